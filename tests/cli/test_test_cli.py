"""`flowkit test` through the real process and in-process: output and exit codes."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowkit.commands import test as command

FLOWKIT = [sys.executable, "-m", "flowkit"]
FIXTURES = Path(__file__).resolve().parent.parent / "testing" / "fixtures"


def flowkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWKIT, *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_passing_tests_exit_0_with_one_line_per_test(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "noop", tmp_path / "recipes")
    result = flowkit("test", cwd=tmp_path / "recipes")  # the current directory by default
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "hello.test.yaml",
        "  PASS  writes and notifies every new item, then nothing on the next run",
        "  PASS  items already done are not repeated and the stored cursor is sent",
        "  PASS  mocked outputs may use the call and the input",
    ]
    assert lines[4].startswith("3 tests: 3 passed (")
    assert result.stderr == ""


def test_a_failing_test_exits_1_and_says_what_differs() -> None:
    out = io.StringIO()
    code = command.run([str(FIXTURES / "failing")], stream=out)
    assert code == 1
    path = FIXTURES / "failing" / "hello.test.yaml"
    assert out.getvalue().splitlines()[:5] == [
        str(path),
        "  FAIL  expects too much",
        f"        {path}:8:21: items.done: expected 2, got 1",
        f'        {path}:10:11: writes[0]: with.data.id: expected "a-9", got "a-1"',
        "          got: noop.write (step record, item a-1, attempt 1) with "
        '{"data": {"id": "a-1", "n": 1}}',
    ]
    assert out.getvalue().splitlines()[-1].startswith("1 test: 0 passed, 1 failed (")


def test_an_invalid_test_file_exits_2_with_positions(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "noop" / "hello.yaml", tmp_path)
    (tmp_path / "bad.test.yaml").write_text(
        "recipe: hello.yaml\ntests:\n  - name: x\n    expect: {staus: ok}\n"
    )
    shutil.copy(FIXTURES / "noop" / "hello.test.yaml", tmp_path)
    result = flowkit("test", ".", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "bad.test.yaml",
        "bad.test.yaml:4:14: tests[0].expect: unknown key 'staus'",
        "  hint: did you mean 'status'?",
    ]
    assert lines[-1].startswith("3 tests: 3 passed, 1 invalid file (")  # the others still run


def test_no_test_files_or_a_missing_path_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.run([str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"flowkit: error: no test files (*.test.yaml) found in {tmp_path}"
    )
    assert command.run([str(tmp_path / "nope")]) == 2
    assert (
        capsys.readouterr().err
        == f"flowkit: error: {tmp_path / 'nope'}: no such file or directory\n"
    )


def test_secrets_given_in_a_test_are_masked_in_the_output(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "flowkit: 1\nname: s\nsecrets: {TOKEN: t}\nsteps:\n"
        "  - id: tell\n    use: noop.notify\n    with: {message: '${{ secrets.TOKEN }}'}\n"
    )
    (tmp_path / "s.test.yaml").write_text(
        "recipe: s.yaml\ntests:\n  - name: shows the message\n"
        "    env: {TOKEN: sk_live_abcdef}\n"
        "    expect: {writes: [{with: {message: other}}]}\n"
    )
    out = io.StringIO()
    assert command.run([str(tmp_path)], stream=out) == 1
    assert "sk_live_abcdef" not in out.getvalue()
    assert 'with.message: expected "other", got "***"' in out.getvalue()
