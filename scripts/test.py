#!/usr/bin/env python3
"""Set up `.venv` with flowkit and its dev dependencies, then run the whole test suite.

    python3 scripts/test.py [pytest args...]

Needs only Python 3.11+ and access to the package index. Re-running reuses `.venv` and
skips the install when pyproject.toml has not changed since the last one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_venv(extras: str) -> Path:
    if sys.version_info < (3, 11):
        sys.exit(f"flowkit needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = BIN / "python"
    if not python.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        spec = f".[{extras}]" if extras else "."
        print(f"installing flowkit{f'[{extras}]' if extras else ''} into {VENV}", flush=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                spec,
            ],
            cwd=ROOT,
            check=True,
        )
        stamp.write_text(digest)
    return python


def main() -> int:
    python = ensure_venv("dev")
    args = sys.argv[1:] or ["-q"]
    return subprocess.run([str(python), "-m", "pytest", *args], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
