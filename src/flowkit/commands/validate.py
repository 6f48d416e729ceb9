"""`flowkit validate PATH...`: check recipes offline and report every problem with its position.

Paths are files, directories (searched recursively for `*.yaml` and `*.yml`, skipping recipe
tests `*.test.yaml`/`*.test.yml` and hidden directories) and globs (`recipes/**/*.yaml`).
Formats:
  text    `file:line:col: message` and an indented `  hint: ...` line per problem on stdout;
          a summary ("2 problems in 1 file (3 files checked)" or "3 files OK") on stderr
  json    a JSON list of {file, line, col, message, hint, rule} on stdout
  github  workflow commands `::error file=…,line=…,col=…,title=…::message` on stdout
          (https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions)
Exit codes (as actionlint's): 0 no problem, 1 problems found, 2 usage (a path that does not
exist, a glob that matches nothing, no recipe file at all), 3 internal error (handled by the
CLI).
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from flowkit.errors import ExitCode, Problem, UsageError

if TYPE_CHECKING:
    from flowkit.connectors.registry import Registry

RECIPE_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = (".test.yaml", ".test.yml")
_GLOB_CHARS = frozenset("*?[")


def run(
    paths: list[str],
    *,
    fmt: str = "text",
    check_env: bool = False,
    env_file: Path | None = None,
    registry: Registry | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Validate the recipes under `paths`; returns the exit code."""
    from flowkit.recipe.loader import check_path

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if fmt not in ("text", "json", "github"):
        err.write(f"flowkit: error: unknown format '{fmt}' (use text, json or github)\n")
        return int(ExitCode.INVALID)
    try:
        files = collect_files(paths)
        env = environment(env_file) if check_env else dict(os.environ)
    except UsageError as exc:
        err.write(f"flowkit: error: {exc.message}\n")
        if exc.hint:
            err.write(f"  hint: {exc.hint}\n")
        return int(ExitCode.INVALID)
    problems: list[Problem] = []
    bad_files = 0
    for file in files:
        _, found = check_path(file, registry=registry, check_env=check_env, env=env)
        if found:
            bad_files += 1
            problems.extend(found)
    if fmt == "json":
        out.write(format_json(problems) + "\n")
    elif fmt == "github":
        out.writelines(format_github(p) + "\n" for p in problems)
    else:
        out.writelines(p.format() + "\n" for p in problems)
    if fmt != "json":
        err.write(summary(len(problems), bad_files, len(files)) + "\n")
    out.flush()
    return int(ExitCode.FAILED if problems else ExitCode.OK)


def summary(problems: int, bad_files: int, files: int) -> str:
    """'2 problems in 1 file (3 files checked)' or '3 files OK'."""

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    if not problems:
        return f"{plural(files, 'file')} OK"
    text = f"{plural(problems, 'problem')} in {plural(bad_files, 'file')}"
    if files != bad_files:
        text += f" ({plural(files, 'file')} checked)"
    return text


def collect_files(paths: Iterable[str]) -> list[Path]:
    """The recipe files named by `paths`, in order, without duplicates; raises UsageError.

    A path that does not exist and a glob that matches nothing are usage errors; so is finding
    no recipe at all. A directory without recipes next to others that have some is fine."""
    files: list[Path] = []
    empty: list[str] = []
    for arg in paths:
        if _GLOB_CHARS & set(arg) and not Path(arg).exists():
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise UsageError(f"no files match '{arg}'")
            for match in matches:
                path = Path(match)
                files.extend(_recipes_in(path) if path.is_dir() else [path])
            continue
        path = Path(arg)
        if not path.exists():
            raise UsageError(f"no such file or directory: {arg}")
        if path.is_dir():
            found = _recipes_in(path)
            if not found:
                empty.append(arg)
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise UsageError(
            f"no recipe files (*.yaml, *.yml) in {', '.join(empty) or 'the given paths'}",
            hint="recipe tests (*.test.yaml) and hidden directories are skipped",
        )
    seen: set[Path] = set()
    unique: list[Path] = []
    for file in files:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique


def _recipes_in(directory: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or not name.endswith(RECIPE_SUFFIXES):
                continue
            if name.endswith(TEST_SUFFIXES):
                continue
            found.append(Path(root) / name)
    return found


def environment(env_file: Path | None) -> dict[str, str]:
    """The process environment plus a .env file (`env_file`, else ./.env if present).

    Variables already set in the environment win over the file, as with python-dotenv."""
    merged: dict[str, str] = {}
    path = env_file if env_file is not None else Path(".env")
    if env_file is not None and not env_file.is_file():
        raise UsageError(f"env file not found: {env_file}")
    if path.is_file():
        try:
            merged.update(parse_env_file(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read env file {path}: {exc}") from None
    merged.update(os.environ)
    return merged


def parse_env_file(text: str) -> dict[str, str]:
    """`KEY=value` lines (`export` prefix, quotes and `#` comments allowed) of a .env file."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def problem_dict(problem: Problem) -> dict[str, object]:
    return {
        "file": problem.file,
        "line": problem.line,
        "col": problem.col,
        "message": problem.message,
        "hint": problem.hint,
        "rule": problem.rule,
    }


def format_json(problems: Iterable[Problem]) -> str:
    return json.dumps([problem_dict(p) for p in problems], indent=2, ensure_ascii=False)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(problem: Problem) -> str:
    """One GitHub Actions `::error` workflow command (hint on a second annotation line)."""
    message = problem.message + (f"\n  hint: {problem.hint}" if problem.hint else "")
    props = ",".join(
        [
            f"file={_escape_property(problem.file)}",
            f"line={problem.line}",
            f"col={problem.col}",
            f"title={_escape_property('flowkit ' + problem.rule)}",
        ]
    )
    return f"::error {props}::{_escape_data(message)}"
