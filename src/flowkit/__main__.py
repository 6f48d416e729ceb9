"""`python -m flowkit` runs the command line."""

from flowkit.cli import main

main()
