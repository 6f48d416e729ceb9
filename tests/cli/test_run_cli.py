"""`flowkit run`, `runs` and `items` through the real process: wiring, output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

FLOWKIT = [sys.executable, "-m", "flowkit"]

OK_RECIPE = """\
    flowkit: 1
    name: cli-ok
    trigger:
      use: noop.read
      with: {items: 3}
      key: ${{ item.id }}
    steps:
      - id: record
        use: noop.write
        with: {data: {id: "${{ item.id }}"}}
"""

PARTIAL_RECIPE = """\
    flowkit: 1
    name: cli-partial
    trigger:
      use: noop.read
      with: {items: 3}
      key: ${{ item.id }}
    steps:
      - id: record
        if: ${{ item.n != 2 }}
        use: noop.write
      - id: broken
        if: ${{ item.n == 2 }}
        use: noop.fail
        with: {kind: validation, times: 9}
"""


def flowkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*FLOWKIT, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60
    )


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_run_succeeds_prints_plain_lines_and_a_summary(tmp_path: Path) -> None:
    recipe = write(tmp_path, OK_RECIPE)
    state = tmp_path / "s.db"
    result = flowkit("run", str(recipe), "--state", str(state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("item=item-1 step=record ok" in line for line in lines)
    assert "3 new item(s) of 3 listed; 3 processed: 3 done, 0 failed, 0 waiting" in lines[-1]
    assert "Traceback" not in result.stderr


def test_quiet_prints_nothing_on_success_and_everything_on_failure(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    ok = flowkit(
        "run", str(write(tmp_path, OK_RECIPE)), "--state", str(state), "--quiet", cwd=tmp_path
    )
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    bad = flowkit(
        "run",
        str(write(tmp_path, PARTIAL_RECIPE, "p.yaml")),
        "--state",
        str(state),
        "--quiet",
        cwd=tmp_path,
    )
    assert bad.returncode == 4  # partial: one item failed, two done
    assert "item=item-2 step=broken FAILED" in bad.stdout
    assert "1 failed" in bad.stdout


def test_json_log_format_is_one_object_per_line(tmp_path: Path) -> None:
    result = flowkit(
        "run",
        str(write(tmp_path, OK_RECIPE)),
        "--state",
        str(tmp_path / "s.db"),
        "--log-format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["event"] == "summary" and records[-1]["done"] == 3
    assert {"run_started", "trigger", "step", "item_finished"} <= {r["event"] for r in records}


def test_invalid_recipe_exits_2_with_file_line_col(tmp_path: Path) -> None:
    recipe = write(tmp_path, "flowkit: 1\nname: bad\nsteps:\n  - id: x\n    use: noop.nope\n")
    result = flowkit("run", str(recipe), "--state", str(tmp_path / "s.db"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{recipe}:5:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_offline_needs_dry_run(tmp_path: Path) -> None:
    result = flowkit(
        "run",
        str(write(tmp_path, OK_RECIPE)),
        "--offline",
        "--state",
        str(tmp_path / "s.db"),
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "--dry-run" in result.stderr


def test_missing_secret_is_a_usage_error(tmp_path: Path) -> None:
    recipe = write(
        tmp_path,
        """\
        flowkit: 1
        name: secretive
        steps:
          - id: tell
            use: noop.notify
            with: {message: "${{ secrets.MISSING_TOKEN }}"}
    """,
    )
    result = flowkit("run", str(recipe), "--state", str(tmp_path / "s.db"), cwd=tmp_path)
    assert result.returncode == 2
    assert "MISSING_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_env_file_and_var_override(tmp_path: Path) -> None:
    recipe = write(
        tmp_path,
        """\
        flowkit: 1
        name: envy
        vars: {count: 1}
        trigger:
          use: noop.read
          with: {items: "${{ vars.count }}"}
          key: ${{ item.id }}
        steps:
          - id: tell
            use: noop.notify
            with: {message: "${{ secrets.TOKEN }}"}
    """,
    )
    (tmp_path / "my.env").write_text("export TOKEN='from-env-file-123'\n")
    result = flowkit(
        "run",
        str(recipe),
        "--state",
        str(tmp_path / "s.db"),
        "--env-file",
        str(tmp_path / "my.env"),
        "--var",
        "count=2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "2 new item(s)" in result.stdout
    unknown = flowkit(
        "run", str(recipe), "--state", str(tmp_path / "s.db"), "--var", "nope=1", cwd=tmp_path
    )
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_runs_and_items_commands(tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    recipe = write(tmp_path, PARTIAL_RECIPE)
    assert flowkit("run", str(recipe), "--state", str(state), cwd=tmp_path).returncode == 4
    listing = flowkit("runs", "list", "--state", str(state), cwd=tmp_path)
    assert listing.returncode == 0 and "cli-partial" in listing.stdout
    shown = flowkit("runs", "show", "last", "--state", str(state), cwd=tmp_path)
    assert shown.returncode == 0
    assert "item-2" in shown.stdout and "request rejected as invalid" in shown.stdout
    items = flowkit("items", "list", "--state", str(state), cwd=tmp_path)
    assert "item-2" in items.stdout and "failed" in items.stdout
    retry = flowkit("items", "retry", "cli-partial", "item-2", "--state", str(state), cwd=tmp_path)
    assert retry.returncode == 0 and "1 item(s)" in retry.stdout
    none = flowkit("items", "retry", "cli-partial", "--state", str(state), cwd=tmp_path)
    assert none.returncode == 2


def test_dry_run_output_cannot_be_mistaken_for_a_real_run(tmp_path: Path) -> None:
    result = flowkit(
        "run",
        str(write(tmp_path, OK_RECIPE)),
        "--dry-run",
        "--state",
        str(tmp_path / "s.db"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DRY RUN")
    assert "would write" in result.stdout and "noop.write" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("DRY RUN run")
    assert not (tmp_path / "s.db").exists()
