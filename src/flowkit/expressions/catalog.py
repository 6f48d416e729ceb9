"""The table of built-in functions: name, arity, usage line and load-time argument checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowkit.expressions.functions import (
    _check_field,
    _check_format,
    _check_jsonpath,
    fn_abs,
    fn_all,
    fn_any,
    fn_coalesce,
    fn_contains,
    fn_default,
    fn_ends_with,
    fn_filter,
    fn_first,
    fn_float,
    fn_format,
    fn_from_json,
    fn_int,
    fn_join,
    fn_jsonpath,
    fn_keys,
    fn_last,
    fn_len,
    fn_lower,
    fn_map,
    fn_max,
    fn_min,
    fn_replace,
    fn_round,
    fn_sort,
    fn_split,
    fn_starts_with,
    fn_str,
    fn_sum,
    fn_to_json,
    fn_trim,
    fn_unique,
    fn_upper,
    fn_values,
)
from flowkit.expressions.times import (
    _check_duration,
    _check_timestamp,
    fn_date,
    fn_duration,
    fn_iso,
    fn_now,
    fn_timestamp,
)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number
    signature: str
    doc: str
    needs_ctx: bool = False
    check: Callable[[list[Any]], None] | None = field(default=None, compare=False)


def _spec(
    fn: Callable[..., Any],
    low: int,
    high: int | None,
    signature: str,
    doc: str,
    *,
    needs_ctx: bool = False,
    check: Callable[[list[Any]], None] | None = None,
) -> FunctionSpec:
    name = signature.split("(", 1)[0]
    return FunctionSpec(name, fn, low, high, signature, doc, needs_ctx, check)


SPECS: dict[str, FunctionSpec] = {
    s.name: s
    for s in [
        _spec(fn_len, 1, 1, "len(x)", "length of a string, list or object"),
        _spec(fn_contains, 2, 2, "contains(haystack, needle)", "substring, list element or key"),
        _spec(fn_starts_with, 2, 2, "starts_with(s, prefix)", "text starts with prefix"),
        _spec(fn_ends_with, 2, 2, "ends_with(s, suffix)", "text ends with suffix"),
        _spec(fn_lower, 1, 1, "lower(s)", "lower-case text"),
        _spec(fn_upper, 1, 1, "upper(s)", "upper-case text"),
        _spec(fn_trim, 1, 2, "trim(s[, chars])", "strip whitespace (or the given characters)"),
        _spec(fn_replace, 3, 3, "replace(s, old, new)", "replace every occurrence"),
        _spec(fn_split, 1, 2, "split(s[, sep])", "list of parts (whitespace when no sep)"),
        _spec(fn_join, 1, 2, "join(list[, sep])", "elements as text joined by sep (',')"),
        _spec(
            fn_format,
            1,
            None,
            "format(fmt, ...)",
            "'{0} {1}' filled with the values",
            check=_check_format,
        ),
        _spec(fn_to_json, 1, 1, "to_json(x)", "compact JSON text"),
        _spec(fn_from_json, 1, 1, "from_json(s)", "parse JSON text"),
        _spec(fn_int, 1, 1, "int(x)", "whole number (truncates)"),
        _spec(fn_float, 1, 1, "float(x)", "floating-point number"),
        _spec(fn_str, 1, 1, "str(x)", "x as it reads in text"),
        _spec(fn_round, 1, 2, "round(x[, n])", "round half away from zero to n digits"),
        _spec(fn_abs, 1, 1, "abs(x)", "absolute value"),
        _spec(fn_min, 1, None, "min(list | a, b, ...)", "smallest value"),
        _spec(fn_max, 1, None, "max(list | a, b, ...)", "largest value"),
        _spec(fn_sum, 1, 1, "sum(list)", "sum of numbers"),
        _spec(fn_keys, 1, 1, "keys(obj)", "list of keys"),
        _spec(fn_values, 1, 1, "values(obj)", "list of values"),
        _spec(fn_default, 2, 2, "default(x, fallback)", "fallback when x is null or ''"),
        _spec(fn_coalesce, 1, None, "coalesce(a, b, ...)", "first value that is not null"),
        _spec(fn_now, 0, 0, "now()", "unix seconds now", needs_ctx=True),
        _spec(
            fn_duration,
            1,
            1,
            "duration(d)",
            "seconds in '90m', '1h30m', '3d', '2w'",
            check=_check_duration,
        ),
        _spec(
            fn_timestamp,
            1,
            1,
            "timestamp(x)",
            "unix seconds of ISO-8601 text",
            check=_check_timestamp,
        ),
        _spec(fn_iso, 1, 1, "iso(ts)", "'2026-11-26T12:00:00Z'"),
        _spec(fn_date, 1, 1, "date(ts)", "'2026-11-26'"),
        _spec(
            fn_jsonpath,
            2,
            2,
            "jsonpath(obj, path)",
            "list of JSONPath matches",
            check=_check_jsonpath,
        ),
        _spec(fn_unique, 1, 1, "unique(list)", "duplicates removed, order kept"),
        _spec(fn_sort, 1, 2, "sort(list[, key])", "ascending, nulls last", check=_check_field(1)),
        _spec(
            fn_filter,
            3,
            3,
            "filter(list, field, value)",
            "elements whose field equals value",
            check=_check_field(1),
        ),
        _spec(
            fn_map, 2, 2, "map(list, field)", "the field of every element", check=_check_field(1)
        ),
        _spec(fn_first, 1, 1, "first(list)", "first element or null"),
        _spec(fn_last, 1, 1, "last(list)", "last element or null"),
        _spec(fn_any, 1, 1, "any(list)", "some element is truthy"),
        _spec(fn_all, 1, 1, "all(list)", "every element is truthy"),
    ]
}
