"""Durations in recipes: `30s`, `5m`, `2h`, `3d`, `1w`, `1h30m`, `250ms`, or a number of seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d|w)\s*)+$"


def parse_duration(value: object) -> float:
    """Seconds in `value`; raises ValueError with a message naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or text like '30s', '5m', '3d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.replace(" ", "")
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return total
    raise ValueError(
        f"'{value}' is not a duration; use a number of seconds or text like "
        "'30s', '5m', '2h', '3d', '1w' or '1h30m'"
    )


def format_duration(seconds: float) -> str:
    """A short human form: 90 -> '1m30s'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out: list[str] = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"
