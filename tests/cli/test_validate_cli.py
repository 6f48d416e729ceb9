"""`flowkit validate` through the real process: formats, exit codes, hostile files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowkit.commands import validate

FLOWKIT = str(Path(sys.executable).parent / "flowkit")

GOOD = """\
flowkit: 1
name: good
trigger:
  use: noop.read
  with: {items: 3, cursor: "${{ cursor }}"}
  key: ${{ item.id }}
steps:
  - id: record
    use: noop.write
    with: {data: {id: "${{ item.id }}"}}
"""

BAD = """\
flowkit: 1
name: bad
steps:
  - id: record
    use: noop.writ
  - id: tell
    use: noop.notify
    with: {message: "${{ steps.recrd.output.id }}", extra: 1}
"""

SECRET = """\
flowkit: 1
name: secret
steps:
  - id: tell
    use: noop.notify
    with: {message: "${{ secrets.TOKEN }}"}
"""


def flowkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWKIT, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "recipes" / "sub").mkdir(parents=True)
    (tmp_path / "recipes" / "good.yaml").write_text(GOOD)
    (tmp_path / "recipes" / "sub" / "bad.yml").write_text(BAD)
    (tmp_path / "recipes" / "good.test.yaml").write_text("not: [a recipe\n")
    (tmp_path / "recipes" / ".hidden").mkdir()
    (tmp_path / "recipes" / ".hidden" / "x.yaml").write_text("- ignored\n")
    (tmp_path / "recipes" / "notes.txt").write_text("ignored")
    return tmp_path


def test_clean_files_exit_0(tree: Path) -> None:
    result = flowkit("validate", "recipes/good.yaml", cwd=tree)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "1 file OK\n")


def test_problems_exit_1_with_positions_and_hints(tree: Path) -> None:
    result = flowkit("validate", "recipes", cwd=tree)
    assert result.returncode == 1
    assert result.stdout == (
        "recipes/sub/bad.yml:5:10: steps[0].use: connector 'noop' has no action 'writ'\n"
        "  hint: did you mean 'noop.write'?\n"
        "recipes/sub/bad.yml:8:26: steps[1].with.message: unknown step 'recrd'\n"
        "  hint: did you mean 'record'?\n"
        "recipes/sub/bad.yml:8:53: steps[1].with: unknown input 'extra' for noop.notify\n"
        "  hint: allowed keys: message\n"
    )
    assert result.stderr == "3 problems in 1 file (2 files checked)\n"


def test_globs(tree: Path) -> None:
    result = flowkit("validate", "recipes/**/*.y*ml", cwd=tree)
    assert result.returncode == 1
    assert result.stderr == "4 problems in 2 files (3 files checked)\n"  # the test file too
    result = flowkit("validate", "recipes/*.yaml", "--format", "json", cwd=tree)
    assert result.returncode == 1  # good.test.yaml matched the glob: globs are taken as given
    assert json.loads(result.stdout)[0]["file"] == "recipes/good.test.yaml"


def test_json_format(tree: Path) -> None:
    result = flowkit("validate", "-f", "json", "recipes/sub/bad.yml", cwd=tree)
    assert result.returncode == 1
    assert result.stderr == ""
    problems = json.loads(result.stdout)
    assert problems[0] == {
        "file": "recipes/sub/bad.yml",
        "line": 5,
        "col": 10,
        "message": "steps[0].use: connector 'noop' has no action 'writ'",
        "hint": "did you mean 'noop.write'?",
        "rule": "connector",
    }
    assert [p["rule"] for p in problems] == ["connector", "expression", "input"]
    clean = flowkit("validate", "--format=json", "recipes/good.yaml", cwd=tree)
    assert (clean.returncode, json.loads(clean.stdout)) == (0, [])


def test_github_format(tree: Path) -> None:
    result = flowkit("validate", "--format", "github", "recipes/sub/bad.yml", cwd=tree)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "::error file=recipes/sub/bad.yml,line=5,col=10,title=flowkit connector::"
        "steps[0].use: connector 'noop' has no action 'writ'%0A  hint: did you mean 'noop.write'?"
    )


def test_check_env_reads_the_environment_and_env_files(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(SECRET)
    missing = flowkit("validate", "--check-env", "r.yaml", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stdout == (
        "r.yaml:6:26: steps[0].with.message: secret TOKEN is not set\n"
        "  hint: set it in the environment or in a .env file (see `--env-file`)\n"
    )
    (tmp_path / "prod.env").write_text("# prod\nexport TOKEN='abc'\n")
    found = flowkit("validate", "--check-env", "--env-file", "prod.env", "r.yaml", cwd=tmp_path)
    assert found.returncode == 0
    absent = flowkit("validate", "--check-env", "--env-file", "nope.env", "r.yaml", cwd=tmp_path)
    assert (absent.returncode, absent.stderr) == (
        2,
        "flowkit: error: env file not found: nope.env\n",
    )


def test_environment_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FROM_ENV", "process")
    assert "DOT" not in validate.environment(None)
    (tmp_path / ".env").write_text("DOT=1\nFROM_ENV=file\n")
    merged = validate.environment(None)
    assert (merged["DOT"], merged["FROM_ENV"]) == ("1", "process")  # the environment wins
    other = tmp_path / "other.env"
    other.write_text("OTHER=2\n")
    assert "DOT" not in validate.environment(other)
    assert validate.environment(other)["OTHER"] == "2"


def test_parse_env_file() -> None:
    text = (
        "# comment\n\nA=1\nexport B = two words \nC='quoted # not a comment'\n"
        'D="double"\nE=value # comment\nnot a line\n=x\nF=\n'
    )
    assert validate.parse_env_file(text) == {
        "A": "1",
        "B": "two words",
        "C": "quoted # not a comment",
        "D": "double",
        "E": "value",
        "F": "",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.yaml"], "flowkit: error: no such file or directory: nope.yaml\n"),
        (["recipes/*.json"], "flowkit: error: no files match 'recipes/*.json'\n"),
    ],
)
def test_usage_errors_exit_2(tree: Path, args: list[str], message: str) -> None:
    result = flowkit("validate", *args, cwd=tree)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message)


def test_an_empty_directory_next_to_recipes_is_fine(tree: Path) -> None:
    (tree / "examples").mkdir()
    result = flowkit("validate", "recipes/good.yaml", "examples", cwd=tree)
    assert (result.returncode, result.stderr) == (0, "1 file OK\n")
    alone = flowkit("validate", "examples", cwd=tree)
    assert alone.returncode == 2
    assert (
        alone.stderr.splitlines()[0]
        == "flowkit: error: no recipe files (*.yaml, *.yml) in examples"
    )


def test_a_bad_option_is_a_usage_error(tree: Path) -> None:
    result = flowkit("validate", "--format", "xml", "recipes", cwd=tree)
    assert result.returncode == 2
    assert "xml" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00",
            "x.yaml:3:1: file contains NUL bytes; it looks like a binary file, not YAML",
        ),
        (
            b"a: !!python/object/apply:os.system ['touch MARKER']\n",
            "x.yaml:1:4: tag '!!python/object/apply:os.system' is not allowed",
        ),
        (
            b"a: &a [x,x,x,x,x,x,x,x,x,x]\n"
            + b"".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n".encode()
                for i in range(8)
            ),
            "x.yaml:5:29: the document holds more than 100,000 values once aliases are expanded",
        ),
        (
            b"- a list\n",
            "x.yaml:1:1: the top level must be a mapping of keys to values, not a list",
        ),
        (b"a: " + b"1" * 100_000 + b"\n", "x.yaml:1:4: number with 100,000 digits is too large"),
    ],
    ids=["binary", "python-tag", "alias-bomb", "list-root", "huge-int"],
)
def test_hostile_files_through_the_process(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "x.yaml").write_bytes(content)
    result = flowkit("validate", "x.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == expected
    assert [line for line in result.stdout.splitlines() if not line.startswith("  hint:")] == [
        expected
    ]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "MARKER").exists()


def test_sixty_megabytes_through_the_process(tmp_path: Path) -> None:
    with (tmp_path / "big.yaml").open("wb") as fh:
        fh.write(b"a: b\n" * (12 * 1024 * 1024))
    result = flowkit("validate", "big.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stdout.splitlines()[0] == "big.yaml:1:1: file is larger than the 5 MB limit (60 MB)"
    )
