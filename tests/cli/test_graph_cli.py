"""`flowkit graph` through the real process: tree, Mermaid, exit codes."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowkit.commands import graph as graph_cmd

FLOWKIT = str(Path(sys.executable).parent / "flowkit")

RECIPE = """\
flowkit: 1
name: graph-demo
trigger:
  use: noop.read
  key: ${{ item.id }}
  cursor: ${{ output.cursor }}
steps:
  - id: notify
    use: noop.notify
    if: ${{ steps.record.output.id != '' }}
    with: {message: "${{ steps.record.output.id }}"}
  - id: record
    use: noop.write
    retry: {attempts: 5}
    timeout: 90s
  - id: end
    wait: {for: 3d}
    needs: [notify]
    on_error: continue
  - id: fan
    use: noop.notify
    for_each: ${{ [1, 2] }}
    with: {message: 'say "${{ each }}" <b>'}
on_failure:
  - id: alert
    use: noop.notify
  - id: log
    use: noop.notify
    needs: [alert]
"""


def flowkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOWKIT, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    return path


def test_tree_when_not_a_terminal(recipe: Path) -> None:
    result = flowkit("graph", "r.yaml", cwd=recipe.parent)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "graph-demo (r.yaml)\n"
        "  trigger:\n"
        "    noop.read\n"
        "      key ${{ item.id }}\n"
        "      cursor ${{ output.cursor }}\n"
        "  steps:\n"
        "    record: noop.write\n"
        "      retry 5 attempts\n"
        "      timeout 1m30s\n"
        "    notify: noop.notify\n"
        "      after record\n"
        "      if ${{ steps.record.output.id != '' }}\n"
        "    end: wait 3d\n"
        "      after notify\n"
        "      on error continue\n"
        "    fan: noop.notify\n"
        "      for each of ${{ [1, 2] }}\n"
        "  on_failure:\n"
        "    alert: noop.notify\n"
        "    log: noop.notify\n"
        "      after alert\n"
    )


def test_mermaid(recipe: Path) -> None:
    result = flowkit("graph", "--format", "mermaid", "r.yaml", cwd=recipe.parent)
    assert result.returncode == 0
    assert result.stdout == (
        "flowchart TD\n"
        '  trigger[["trigger: noop.read"]]\n'
        '  s_record["record: noop.write<br/>retry 5 attempts<br/>timeout 1m30s"]\n'
        "  s_notify[\"notify: noop.notify<br/>if ${{ steps.record.output.id != '' }}\"]\n"
        '  s_end(["end: wait 3d<br/>on error continue"])\n'
        '  s_fan["fan: noop.notify<br/>for each of ${{ [1, 2] }}"]\n'
        "  trigger --> s_record\n"
        "  s_record --> s_notify\n"
        "  s_notify --> s_end\n"
        "  trigger --> s_fan\n"
        '  subgraph on_failure["on_failure"]\n'
        '  f_alert["alert: noop.notify"]\n'
        '  f_log["log: noop.notify"]\n'
        "  end\n"
        "  f_alert --> f_log\n"
    )


def test_invalid_recipe_exits_2_with_its_problems(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("flowkit: 1\nname: x\nsteps:\n  - {id: a, use: noop.nope}\n")
    result = flowkit("graph", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == (
        "bad.yaml:4:18: steps[0].use: connector 'noop' has no action 'nope'"
    )
    missing = flowkit("graph", "nope.yaml", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (2, "nope.yaml:1:1: file not found\n")


def test_labels_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "flowkit: 1\nname: x\nsteps:\n  - id: a\n    use: noop.notify\n"
        "    if: ${{ 'a\"<b>' == '&' }}\n"
    )
    out = io.StringIO()
    assert graph_cmd.run(path, fmt="mermaid", stdout=out, stderr=io.StringIO()) == 0
    assert "  s_a[\"a: noop.notify<br/>if ${{ 'a#quot;#lt;b#gt;' == '#amp;' }}\"]" in (
        out.getvalue().splitlines()
    )


def test_rich_tree_on_a_terminal(recipe: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    assert graph_cmd.run(recipe, stdout=out, stderr=io.StringIO()) == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # bold and dim stay with NO_COLOR
    assert "├── steps" in text
    assert "record: noop.write" in text
    assert "after record" in text


def test_unknown_format(recipe: Path) -> None:
    err = io.StringIO()
    assert graph_cmd.run(recipe, fmt="dot", stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue() == "flowkit: error: unknown format 'dot' (use tree or mermaid)\n"
