"""Docs are part of the feature: every CLI command and option, and every built-in connector,
must be documented (a missing entry fails here, as in datasette's test_docs.py)."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import typer.main

from flowkit.cli import app

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _commands() -> list[tuple[str, object]]:
    group = typer.main.get_command(app)
    found: list[tuple[str, object]] = []

    def walk(cmd: object, prefix: str) -> None:
        sub = getattr(cmd, "commands", None)
        if sub:
            for name, child in sub.items():
                walk(child, f"{prefix} {name}".strip())
        else:
            found.append((prefix, cmd))

    walk(group, "")
    return found


@pytest.mark.parametrize("name,command", _commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_and_option_is_in_the_cli_docs(name: str, command: object) -> None:
    text = (DOCS / "cli.md").read_text()
    assert f"flowkit {name}" in text, f"`flowkit {name}` is not documented in docs/cli.md"
    for param in getattr(command, "params", []):
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--help",):
                documented = opt in text or opt in (DOCS / "validate.md").read_text()
                assert documented, f"option {opt} of `flowkit {name}` is not documented"


def test_every_builtin_connector_is_in_the_reference() -> None:
    reference = (DOCS / "connectors-reference.md").read_text()
    names = {
        ep.name
        for ep in entry_points(group="flowkit.connectors")
        if ep.value.startswith("flowkit.")
    }
    missing = [n for n in sorted(names) if not re.search(rf"^#+ .*\b{n}\b", reference, re.M)]
    assert not missing, (
        f"not in docs/connectors-reference.md: {missing} (run `flowkit connectors docs`)"
    )


def test_exit_codes_table_matches_the_code() -> None:
    from flowkit.errors import ExitCode

    text = (DOCS / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | {code.name} |" in text
