"""Time functions of the expression language: now, duration, timestamp, iso, date.

Times are unix seconds (float) in UTC. `now()` reads the clock from the evaluation context
(`__now__`, a number or a callable) so runs, tests and dry runs can pin it. ISO-8601 text is
read with `datetime.fromisoformat` (https://docs.python.org/3/library/datetime.html), which
accepts `Z` and UTC offsets from Python 3.11 on; text without a zone is taken as UTC.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from flowkit.expressions import values as v
from flowkit.expressions.functions import _FLOAT_TEXT, UNKNOWN, ArgError, _need, _str
from flowkit.expressions.values import EvalError


def fn_now(ctx: Mapping[str, Any]) -> float:
    clock = ctx.get("__now__")
    if clock is None:
        return time.time()
    if callable(clock):
        clock = clock()
    return float(clock)


_DURATION_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|w|d|h|m|s)")
_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def fn_duration(value: Any) -> float:
    """Seconds in '3d', '90m', '1h30m', '45s', '2w', '500ms', or a number of seconds."""
    if v.is_number(value):
        if not math.isfinite(value):
            raise _need("duration", "a finite number of seconds", value)
        return float(value)
    text = _str("duration", value).strip()
    if _FLOAT_TEXT.fullmatch(text) and not text.startswith(("-", "+")):
        return float(text)
    total, pos = 0.0, 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _SECONDS[m.group(2)]
        pos = m.end()
    if not text or pos < len(text):
        raise EvalError(
            f"invalid duration {v.describe(value)}",
            "use units w, d, h, m, s, ms like '90m', '1h30m' or '3d', or a number of seconds",
        )
    return total


def _check_duration(args: list[Any]) -> None:
    if args[0] is not UNKNOWN:
        try:
            fn_duration(args[0])
        except EvalError as exc:
            raise ArgError(0, exc.message, exc.hint) from None


def fn_timestamp(value: Any) -> float:
    """Unix seconds from a number, ISO-8601 text ('Z' and offsets; no zone means UTC)."""
    if v.is_number(value):
        return float(value)
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if _FLOAT_TEXT.fullmatch(text):
            return float(text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise EvalError(
                f"`timestamp()` cannot read {v.describe(value)} as a time",
                "use ISO 8601 like '2026-11-26T12:00:00Z' or unix seconds",
            ) from None
    else:
        raise _need("timestamp", "ISO-8601 text or unix seconds", value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _utc(fname: str, value: Any) -> datetime:
    seconds = fn_timestamp(value)
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise EvalError(f"`{fname}()`: {v.describe(value)} is out of range") from None


def fn_iso(value: Any) -> str:
    moment = _utc("iso", value).replace(tzinfo=None)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec) + "Z"


def fn_date(value: Any) -> str:
    return _utc("date", value).date().isoformat()


def _check_timestamp(args: list[Any]) -> None:
    if isinstance(args[0], str):
        try:
            fn_timestamp(args[0])
        except EvalError as exc:
            raise ArgError(0, exc.message, exc.hint) from None
