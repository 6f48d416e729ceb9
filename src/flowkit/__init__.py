"""flowkit: declarative back-office recipes, run exactly once per item from cron."""

__version__ = "0.1.0"
