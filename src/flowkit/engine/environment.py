"""Where recipe variables and secrets come from: the process environment and a `.env` file.

`secrets.NAME` reads the environment variable NAME (the real environment wins over `.env`) and
registers its value for masking; `env.NAME` reads it unmasked; `vars.NAME` is the recipe's
`vars:` value, overridden by `--var NAME=VALUE` (the override is parsed like a YAML 1.2 scalar:
numbers and true/false keep their type).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowkit import redact
from flowkit.errors import UsageError

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (optional `export`, quotes, `#` comments); errors name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the env file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: the env file is not UTF-8 text") from exc
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise UsageError(f"{path}:{number}: expected NAME=VALUE")
        name, raw = match.group(1), match.group(2)
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
            if match.group(2)[0] == '"':
                raw = raw.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in raw:
            raw = raw.split(" #", 1)[0].rstrip()
        values[name] = raw
    return values


def load_environment(
    env_file: Path | None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables a recipe sees: `.env` (explicit, else ./.env if present) under os.environ."""
    merged: dict[str, str] = {}
    path = env_file
    if path is None and Path(".env").is_file():
        path = Path(".env")
    if path is not None:
        merged.update(parse_env_file(path))
    merged.update(base if base is not None else os.environ)
    return merged


def parse_var_overrides(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise UsageError(f"--var '{pair}': expected NAME=VALUE")
        out[name] = _scalar(value)
    return out


def _scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?", text):
        return float(text)
    return text


def resolve_secrets(names: set[str], env: Mapping[str, str]) -> dict[str, str]:
    """The referenced secrets' values, registered for masking; missing ones are a usage error."""
    missing = sorted(n for n in names if not env.get(n))
    if missing:
        listed = ", ".join(missing)
        raise UsageError(
            f"secret{'s' if len(missing) > 1 else ''} not set: {listed}",
            hint="export them, or put NAME=value lines in a .env file (`--env-file`)",
        )
    values = {n: env[n] for n in names}
    for value in values.values():
        redact.register(value)
    return values
