#!/usr/bin/env python3
"""Install flowkit into `.venv` and run a real recipe against the local sandbox.

    python3 scripts/quickstart.py

Starts the sandbox (local stand-ins of Stripe, QuickBooks and a mail server), runs
`recipes/invoice-on-payment.yaml` with an SQLite state file under `.flowkit/`, stops the
sandbox, and tells you what happened and where to look.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test import BIN, ROOT, ensure_venv


def main() -> int:
    ensure_venv("")
    flowkit = BIN / "flowkit"
    return subprocess.run([str(flowkit), "quickstart", *sys.argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
