"""`flowkit connectors`, `connectors show` and `connectors docs`: in process and as the real
`flowkit` program."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from flowkit.commands import connectors as cmd
from flowkit.connectors import registry as registry_module
from flowkit.connectors.registry import GROUP, Registry
from flowkit.connectors.smtp import SendInput

REPO = Path(__file__).resolve().parents[2]
FLOWKIT = Path(sys.executable).with_name("flowkit")
BUILTINS = ["csv", "noop", "smtp", "sql"]


def flowkit(*args: str, cwd: Path = REPO, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(FLOWKIT), *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Done]:
    """Every program run this module checks, started at once (each takes about a second)."""
    stale = tmp_path_factory.mktemp("docs") / "stale.md"
    stale.write_text("# an old reference\n")
    commands = {
        "list": ["connectors"],
        "show": ["connectors", "show", "smtp"],
        "unknown": ["connectors", "show", "smtpp"],
        "check": ["connectors", "docs", "--check"],
        "stale": ["connectors", "docs", "--check", "--output", str(stale)],
    }
    started = {name: flowkit(*args) for name, args in commands.items()}
    done = {}
    for name, proc in started.items():
        out, err = proc.communicate(timeout=120)
        done[name] = Done(proc.returncode, out, err)
    done["stale-path"] = Done(0, str(stale), "")
    return done


# --- the real program -------------------------------------------------------------------------


def test_list_shows_every_builtin_action_sorted_in_plain_columns(runs: dict[str, Done]) -> None:
    done = runs["list"]
    assert done.stderr == "" and done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["CONNECTOR", "ACTION", "EFFECT", "IDEMPOTENCY", "DESCRIPTION"]
    rows = [line.split(None, 4) for line in lines[1:]]
    assert rows == sorted(rows, key=lambda r: (r[0], r[1]))
    mine = {(r[0], r[1]): (r[2], r[3]) for r in rows if r[0] in BUILTINS}
    assert mine == {
        ("csv", "append"): ("write", "none"),
        ("csv", "read"): ("read", "-"),
        ("csv", "write"): ("write", "natural"),
        ("noop", "fail"): ("write", "header"),
        ("noop", "notify"): ("notify", "none"),
        ("noop", "read"): ("read", "-"),
        ("noop", "write"): ("write", "header"),
        ("smtp", "send_email"): ("notify", "header"),
        ("sql", "execute"): ("write", "none"),
        ("sql", "query"): ("read", "-"),
    }
    # plain aligned columns: the ACTION column starts at the same offset on every line
    assert len({len(line) - len(line[len(line.split()[0]) :].lstrip()) for line in lines}) == 1


def test_show_connector_lists_settings_with_secrets_and_actions(runs: dict[str, Done]) -> None:
    done = runs["show"]
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0].startswith("smtp: Send email through an SMTP server")
    assert "docs: https://docs.python.org/3/library/smtplib.html" in out
    assert "package: flowkit " in out
    settings = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert settings["host"].split()[1:3] == ["str", "required"]
    assert "str (secret) | null" in settings["password"]
    assert '"none" | "starttls" | "tls"  "starttls"' in settings["security"]
    assert "notify  header" in settings["send_email"]


def test_unknown_name_gives_one_line_with_a_suggestion(runs: dict[str, Done]) -> None:
    assert runs["unknown"].stdout == ""
    assert runs["unknown"].stderr == (
        "flowkit: error: unknown connector 'smtpp'; did you mean 'smtp'?\n"
    )


def test_unknown_name_exits_2(runs: dict[str, Done]) -> None:
    assert runs["unknown"].returncode == 2


def test_committed_reference_is_up_to_date(runs: dict[str, Done]) -> None:
    done = runs["check"]
    assert done.stderr == "", "regenerate it: `flowkit connectors docs`"
    assert done.returncode == 0
    assert done.stdout.startswith("docs/connectors-reference.md is up to date")
    text = (REPO / "docs" / "connectors-reference.md").read_text()
    for name in BUILTINS:  # like datasette's test_docs: a built-in missing from docs fails
        assert f"\n## {name}\n" in text
        assert f"[`{name}`](#{name})" in text


def test_stale_reference_is_reported_in_one_line(runs: dict[str, Done]) -> None:
    stale = runs["stale-path"].stdout
    assert runs["stale"].stderr == (
        f"flowkit: error: {stale} is out of date; regenerate it with `flowkit connectors docs`\n"
    )


def test_stale_reference_exits_1(runs: dict[str, Done]) -> None:
    assert runs["stale"].returncode == 1


# --- in process: exit codes and rendering -----------------------------------------------------


def _registry_with_broken_plugin(monkeypatch: pytest.MonkeyPatch) -> Registry:
    real = registry_module.entry_points(group=GROUP)
    broken = EntryPoint(name="broken", value="flowkit_no_such_module:connector", group=GROUP)

    def fake(group: str) -> list[EntryPoint]:
        assert group == GROUP
        return [*real, broken]

    monkeypatch.setattr(registry_module, "entry_points", fake)
    return Registry()


def test_list_reports_a_broken_plugin_in_one_line_and_lists_the_rest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cmd.list_connectors(_registry_with_broken_plugin(monkeypatch))
    out, err = capsys.readouterr()
    assert code == 1
    assert err == (
        "flowkit: error: connector 'broken' from ? failed to load: ModuleNotFoundError: "
        "No module named 'flowkit_no_such_module'; reinstall or remove the package that "
        "provides flowkit_no_such_module:connector\n"
    )
    rows = {tuple(line.split(None, 4)[:2]): line.split(None, 4) for line in out.splitlines()}
    assert rows[("broken", "-")][2:] == ["-", "-", "(failed to load, see below)"]
    assert "smtp" in out and "send_email" in out


def test_show_and_docs_return_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd.show("nosuch") == 2
    assert cmd.show("csv.raed") == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "flowkit: error: connector 'csv' has no action 'raed'; did you mean 'csv.read'?"
    )
    assert cmd.show("noop") == 0
    target = tmp_path / "sub" / "ref.md"
    assert cmd.docs(output=target, check=True) == 1
    assert capsys.readouterr().err == (
        f"flowkit: error: {target} is missing; regenerate it with `flowkit connectors docs`\n"
    )
    assert cmd.docs(output=target) == 0
    assert capsys.readouterr().out.startswith(f"wrote {target} (")
    assert cmd.docs(output=target, check=True) == 0
    target.write_text(target.read_text().replace("## csv", "## CSV"))
    assert cmd.docs(output=target, check=True) == 1


def test_show_action_lists_input_and_output_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd.show("noop.fail") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "noop.fail: Fail with a chosen error kind the first N attempts per key, then succeed."
    )
    assert out[1] == (
        "effect: write   idempotency: header   repeated automatically after an unknown outcome: yes"
    )
    fields = {line.split()[0]: line for line in out if line.startswith("  ")}
    assert '"transient" | "rate_limited" | "timeout"' in fields["kind"]
    assert fields["times"].split()[1:3] == ["int", "1"]
    assert fields["retry_after"].split()[1:4] == ["float", "|", "null"]
    assert fields["attempts"].split()[1] == "int"  # the output model


def test_docs_includes_only_builtins_and_warns_about_broken_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = registry_module.entry_points(group=GROUP)
    extra = [
        EntryPoint(name="thirdparty", value="somebody_else:connector", group=GROUP),
        EntryPoint(name="broken", value="flowkit.connectors.no_such:connector", group=GROUP),
    ]
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*real, *extra])
    target = tmp_path / "ref.md"
    assert cmd.docs(output=target, registry=Registry()) == 0
    err = capsys.readouterr().err
    assert err.startswith("flowkit: warning: left out of the reference: connector 'broken'")
    assert err.count("\n") == 1
    text = target.read_text()
    assert "thirdparty" not in text and "## broken" not in text
    assert "\n## noop\n" in text


def test_rich_tables_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cmd, "_use_rich", lambda: True)
    assert cmd.show("csv.read") == 0
    out = capsys.readouterr().out
    assert "csv.read: Read a CSV file" in out
    assert "key_column" in out and "numeric" in out
    assert "list[str]" in out  # cells are text, not rich markup
    cmd.list_connectors()
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "connector",
        "action",
        "effect",
        "idempotency",
        "description",
    ]
    assert "send_email" in out


def test_describe_fields_flattens_nested_models() -> None:
    fields = {f.name: f for f in cmd.describe_fields(SendInput)}
    assert fields["attachments"].type == "list[object]"
    assert fields["attachments[].path"].type == "str | null"
    assert fields["attachments[].path"].default == "null"
    assert fields["to"].required and fields["to"].type == "str | list[str]"
    assert fields["context"].default == "{}"


@pytest.mark.parametrize(
    ("annotation", "label"),
    [
        (int, "int"),
        (str | None, "str | null"),
        (list[dict[str, Any]], "list[dict[str, any]]"),
        (dict, "dict"),
    ],
)
def test_type_labels(annotation: Any, label: str) -> None:
    assert cmd.type_label(annotation) == label


def test_reference_rendering_is_deterministic_and_escapes_tables() -> None:
    registry = Registry()
    connectors = [registry.get(name) for name in BUILTINS]
    first = cmd.render_reference(connectors)
    assert first == cmd.render_reference(list(reversed(connectors)))
    assert "| `port` | `int \\| null` | `null` |" in first
    assert "### `smtp.send_email`" in first
    assert "**Secret.**" in first
