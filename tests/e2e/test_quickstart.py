"""`flowkit quickstart`: the first command of the README, on a fresh directory, twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowkit.commands import quickstart
from flowkit.errors import ExitCode

from .conftest import explain

STATE = Path(".flowkit") / "quickstart.db"


def run_quickstart(capsys: pytest.CaptureFixture[str], state: Path | None = None) -> str:
    code = quickstart.run(state=state)
    out = capsys.readouterr()
    assert code == ExitCode.OK, out.out + out.err
    return out.out


def test_quickstart_runs_the_recipe_and_explains_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    out = run_quickstart(capsys)
    lines = out.splitlines()
    assert "1. Sandbox started on 127.0.0.1 with 3 demo payments in Stripe." in lines
    assert f"   state: {STATE} (new)" in lines
    assert any(line.endswith("invoice-on-payment trigger listed=3 new=3") for line in lines)
    assert any(
        "ok: 3 new item(s) of 3 listed; 3 processed: 3 done, 0 failed" in line for line in lines
    )
    assert "   3 payments invoiced in QuickBooks (invoices 1001, 1002, 1003)" in lines
    assert "   3 invoice emails sent" in lines
    assert any(line.startswith("   3 Stripe charges marked invoiced") for line in lines)
    caught = [line for line in lines if line.startswith("     to ")]
    assert len(caught) == 3
    assert all("@example.com: Your invoice 100" in line for line in caught)
    assert f"   flowkit runs show last --state {STATE}" in out
    assert "The sandbox is stopped" in lines[-1]
    assert (tmp_path / STATE).is_file()


def test_quickstart_twice_starts_from_a_fresh_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    run_quickstart(capsys)
    again = run_quickstart(capsys)
    assert f"   state: {STATE} (removed the previous one: the sandbox is new each time)" in again
    assert "All 3 payments went through" in again


def test_an_explicit_state_file_with_runs_is_never_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine.db"
    out = run_quickstart(capsys, state=mine)
    assert "   state: mine.db" in out.splitlines()
    code = quickstart.run(state=mine)
    err = capsys.readouterr().err
    assert code == ExitCode.INVALID
    assert "mine.db already holds runs" in err and "hint: delete that file" in err
    assert mine.exists()


def test_a_missing_recipe_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(quickstart, "recipe_candidates", lambda: [tmp_path / "nowhere.yaml"])
    assert quickstart.run(state=None) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "the shipped recipe invoice-on-payment.yaml was not found" in err
    assert "nowhere.yaml" in err and "hint:" in err


def test_cli_quickstart_keeps_away_from_flowkit_state(tmp_path: Path) -> None:
    """The suite's FLOWKIT_STATE (a file that must never be created, see tests/conftest.py) is
    not the quickstart's --state default: it uses its own file (the guard checks it)."""
    result = subprocess.run(
        [sys.executable, "-c", "from flowkit.cli import main; main()", "quickstart"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    assert "All 3 payments went through" in result.stdout
    assert (tmp_path / STATE).is_file()
