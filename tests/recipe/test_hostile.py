"""Hostile input: every kind of bad file gets one clear line naming it, a non-zero exit, no
traceback, in bounded time and memory (issue 2, item 10)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from flowkit.commands import graph as graph_cmd
from flowkit.commands import validate

MB = 1024 * 1024


def billion_laughs() -> str:
    lines = ['lol: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"l{i}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def deep_block(levels: int) -> str:
    return "".join(" " * i + f"k{i}:\n" for i in range(levels)) + " " * levels + "x\n"


HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty": (b"", ":1:1: file is empty"),
    "blank": (b"\n   \n\n", ":1:1: file is empty"),
    "comments-only": (b"# nothing here\n", ":1:1: file is empty"),
    "not-yaml": (b"flowkit: 1\nname: [unclosed\nsteps: x\n", ":3:6: invalid YAML: "),
    "python-source": (b"def f():\n\treturn {'a': 1}\n", ":2:1: invalid YAML: a tab character"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ":3:1: file contains NUL bytes"),
    "nul-bytes": (b"flowkit: 1\nname: a\x00b\n", ":2:8: file contains NUL bytes"),
    "utf-16": ("flowkit: 1\n".encode("utf-16"), ":1:1: file is encoded as UTF-16, not UTF-8"),
    "latin-1": ("name: Norv\u00e8ge\n".encode("latin-1"), ":1:11: file is not valid UTF-8"),
    "control-char": (b"name: a\x1bb\n", ":1:8: file contains a control character (U+001B)"),
    "list-root": (b"- flowkit: 1\n- name: x\n", ":1:1: the top level must be a mapping"),
    "scalar-root": (b"42\n", ":1:1: the top level must be a mapping of keys to values, not"),
    "duplicate-keys": (b"flowkit: 1\nname: a\nname: b\n", ":3:1: duplicate key 'name'"),
    "tab-indent": (b"flowkit: 1\nsteps:\n\t- id: a\n", ":3:1: invalid YAML: a tab character"),
    "deep-flow": (("a: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(), "nesting is deeper"),
    "deep-block": (deep_block(2_000).encode(), ":101:101: nesting is deeper than 100 levels"),
    "deep-flow-mappings": (("a: " + "{a: " * 5_000 + "1" + "}" * 5_000).encode(), "nesting"),
    "alias-bomb": (billion_laughs().encode(), "holds more than 100,000 values"),
    "python-tag": (
        b"flowkit: 1\nname: !!python/object/apply:os.system ['touch MARKER']\n",
        ":2:7: tag '!!python/object/apply:os.system' is not allowed",
    ),
    "python-name-tag": (b"a: !!python/name:os.system\n", ":1:4: tag '!!python/name:os.system'"),
    "huge-int": (b"flowkit: " + b"9" * 100_000 + b"\n", ":1:10: number with 100,000 digits"),
    "complex-key": (b"? {a: 1}\n: b\n", ":1:3: a mapping key must be a plain value"),
    "jinja-value": (b"flowkit: 1\nname: {{ x }}\n", ":2:7: `{{` starts a YAML mapping"),
    "unquoted-star": (b"schedule: */5 * * * *\n", ":1:12: invalid YAML: "),
    "two-documents": (b"a: 1\n---\na: 2\n", ":2:1: the file holds more than one YAML document"),
    "undefined-alias": (b"a: *x\n", ":1:4: alias '*x' refers to no anchor"),
    "recursive-alias": (b"a: &x [*x]\n", ":1:8: alias '*x' refers to a value that contains it"),
}


def run_validate(*paths: str, fmt: str = "text") -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    code = validate.run(list(paths), fmt=fmt, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - start


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    content, expected = HOSTILE[name]
    Path(f"{name}.yaml").write_bytes(content)
    code, out, err, elapsed = run_validate(f"{name}.yaml")
    assert code == 1
    problems = [line for line in out.splitlines() if not line.startswith("  hint: ")]
    assert len(problems) == 1, out
    assert problems[0].startswith(f"{name}.yaml:")
    assert expected in problems[0]
    assert len(problems[0]) < 300
    assert "Traceback" not in out + err
    assert err == "1 problem in 1 file\n"
    assert elapsed < 3
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("fmt", ["json", "github"])
def test_alias_bomb_output_stays_small(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    code, out, _, _ = run_validate(str(path), fmt=fmt)
    assert code == 1
    assert len(out) < 1_000
    if fmt == "json":
        assert json.loads(out)[0]["rule"] == "yaml"


def test_sixty_megabytes_are_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    line = b"key: " + b"x" * 58 + b"\n"  # 64 bytes
    with path.open("wb") as fh:
        for _ in range(60 * MB // (64 * 1024)):
            fh.write(line * 1024)
    assert path.stat().st_size == 60 * MB
    code, out, err, elapsed = run_validate(str(path))
    assert code == 1
    assert err == "1 problem in 1 file\n"
    assert out == f"{path}:1:1: file is larger than the 5 MB limit (60 MB)\n" + (
        "  hint: a recipe is a few kilobytes; is this the right file?\n"
    )
    assert elapsed < 1


def test_a_directory_without_recipes_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "r.test.yaml").write_text("a: 1\n")
    code, out, err, _ = run_validate(str(tmp_path))
    assert code == 2
    assert out == ""
    assert err.splitlines()[0] == f"flowkit: error: no recipe files (*.yaml, *.yml) in {tmp_path}"


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err, _ = run_validate(str(tmp_path / "nope.yaml"))
    assert code == 2
    assert out == ""
    assert err == f"flowkit: error: no such file or directory: {tmp_path}/nope.yaml\n"


def test_a_directory_given_to_graph(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = graph_cmd.run(tmp_path, stdout=out, stderr=err)
    assert code == 2
    assert err.getvalue() == f"{tmp_path}:1:1: is a directory, not a recipe file\n"


@pytest.mark.parametrize("name", ["binary", "alias-bomb", "deep-flow", "empty"])
def test_hostile_files_given_to_graph(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(HOSTILE[name][0])
    out, err = io.StringIO(), io.StringIO()
    assert graph_cmd.run(path, stdout=out, stderr=err) == 2
    assert out.getvalue() == ""
    lines = [x for x in err.getvalue().splitlines() if not x.startswith("  hint:")]
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:")
