"""Start-up cost: what the CLI imports for `--help` and for `validate` (SPEC: a fast start;
`validate` in CI well under a second). Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
from flowkit import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _heavy(modules: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_help_imports_neither_the_engine_nor_httpx_nor_the_connectors() -> None:
    modules = _imported("--help")
    assert _heavy(modules, "flowkit.engine", "httpx", "aiohttp", "flowkit.connectors") == []


def test_validate_imports_the_connectors_models_but_not_the_http_layer() -> None:
    modules = _imported("validate", "recipes", "examples")
    assert "flowkit.connectors.stripe" in modules  # the models are what validate checks
    assert (
        _heavy(
            modules,
            "httpx",
            "aiohttp",
            "flowkit.engine",
            "flowkit.connectors.http_client",
            "flowkit.connectors.http_transport",
            "flowkit.connectors.auth",
            "flowkit.connectors.quickbooks.session",
        )
        == []
    )
