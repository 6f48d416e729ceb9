"""The built-in functions of the expression language (documented in the package docstring).

Every function takes and returns JSON-like values, checks its argument types and raises
EvalError with a one-line message naming itself. Sizes of built strings and lists are capped.
Time functions live in `times.py`, the table of all functions in `catalog.py`.
JSONPath uses jsonpath-ng's extended parser (https://github.com/h2non/jsonpath-ng#extensions).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flowkit.expressions import values as v
from flowkit.expressions.values import EvalError

UNKNOWN: Any = object()  # an argument that is not a literal (seen by load-time checks)


class ArgError(Exception):
    """A load-time problem with the literal argument at `position`."""

    def __init__(self, position: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.message = message
        self.hint = hint


def _need(fname: str, what: str, value: Any) -> EvalError:
    return EvalError(f"`{fname}()` needs {what}, got {v.what(value)}")


def _str(fname: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _need(fname, "a string", value)


def _list(fname: str, value: Any) -> list[Any] | tuple[Any, ...]:
    if v.is_list(value):
        return value  # type: ignore[no-any-return]
    raise _need(fname, "a list", value)


def _num(fname: str, value: Any) -> int | float:
    if v.is_number(value):
        return value  # type: ignore[no-any-return]
    raise _need(fname, "a number", value)


def _obj(fname: str, value: Any) -> Mapping[Any, Any]:
    if isinstance(value, Mapping):
        return value
    raise _need(fname, "an object", value)


# -- text ------------------------------------------------------------------------------------


def fn_len(value: Any) -> int:
    if isinstance(value, str | Mapping) or v.is_list(value):
        return len(value)
    raise _need("len", "a string, list or object", value)


def fn_contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, str):
        return _str("contains", needle) in haystack
    if v.is_list(haystack):
        return any(v.equal(needle, x) for x in haystack)
    if isinstance(haystack, Mapping):
        return v.member(needle, haystack)
    raise _need("contains", "a string, list or object to search in", haystack)


def fn_starts_with(text: Any, prefix: Any) -> bool:
    return _str("starts_with", text).startswith(_str("starts_with", prefix))


def fn_ends_with(text: Any, suffix: Any) -> bool:
    return _str("ends_with", text).endswith(_str("ends_with", suffix))


def fn_lower(text: Any) -> str:
    return _str("lower", text).lower()


def fn_upper(text: Any) -> str:
    return _str("upper", text).upper()


def fn_trim(text: Any, chars: Any = None) -> str:
    return _str("trim", text).strip(None if chars is None else _str("trim", chars))


def fn_replace(text: Any, old: Any, new: Any) -> str:
    s, a, b = _str("replace", text), _str("replace", old), _str("replace", new)
    if not a:
        raise EvalError("`replace()` cannot replace an empty string")
    if len(s) + s.count(a) * (len(b) - len(a)) > v.MAX_TEXT:
        raise EvalError(f"`replace()` result is longer than {v.MAX_TEXT:,} characters")
    return s.replace(a, b)


def fn_split(text: Any, sep: Any = None) -> list[str]:
    text = _str("split", text)
    if sep is None:
        return v.check_items(text.split())
    if not _str("split", sep):
        raise EvalError("`split()` needs a non-empty separator")
    return v.check_items(text.split(sep))


def fn_join(items: Any, sep: Any = ",") -> str:
    parts = [v.to_text(x) for x in _list("join", items)]
    return v.check_text(_str("join", sep).join(parts))


_PLACEHOLDER = re.compile(r"\{([0-9]{1,4})\}")


def _format_parts(fmt: str, count: int | None) -> list[str | int]:
    """Split a format string into text and placeholder indexes; check them."""
    parts: list[str | int] = []
    i, n = 0, len(fmt)
    buf: list[str] = []
    while i < n:
        c = fmt[i]
        if (c == "{" and fmt.startswith("{{", i)) or (c == "}" and fmt.startswith("}}", i)):
            buf.append(c)
            i += 2
        elif c == "{":
            m = _PLACEHOLDER.match(fmt, i)
            if m is None:
                raise EvalError(
                    "bad placeholder in format string",
                    "use {0}, {1}, ... for the values and {{ or }} for a literal brace",
                )
            index = int(m.group(1))
            if count is not None and index >= count:
                raise EvalError(
                    f"format string uses {{{index}}} but only {count} value(s) follow it"
                )
            parts.append("".join(buf))
            buf = []
            parts.append(index)
            i = m.end()
        elif c == "}":
            raise EvalError("single `}` in format string", "write `}}` for a literal brace")
        else:
            buf.append(c)
            i += 1
    parts.append("".join(buf))
    return parts


def fn_format(fmt: Any, *args: Any) -> str:
    out: list[str] = []
    size = 0
    for part in _format_parts(_str("format", fmt), len(args)):
        text = part if isinstance(part, str) else v.to_text(args[part])
        size += len(text)
        if size > v.MAX_TEXT:
            raise EvalError(f"`format()` result is longer than {v.MAX_TEXT:,} characters")
        out.append(text)
    return "".join(out)


def _check_format(args: list[Any]) -> None:
    if isinstance(args[0], str):
        try:
            _format_parts(args[0], len(args) - 1)
        except EvalError as exc:
            raise ArgError(0, exc.message, exc.hint) from None


# -- conversion ------------------------------------------------------------------------------


def fn_to_json(value: Any) -> str:
    return v.to_json(value)


def fn_from_json(text: Any) -> Any:
    try:
        return json.loads(_str("from_json", text))
    except json.JSONDecodeError as exc:
        raise EvalError(
            f"`from_json()` got invalid JSON: {exc.msg} at character {exc.pos}"
        ) from None
    except RecursionError:
        raise EvalError("`from_json()` got JSON nested too deeply") from None


_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def fn_int(value: Any) -> int:
    """Whole numbers; floats and decimal text are truncated toward zero."""
    if v.is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise _need("int", "a finite number", value)
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if _INT_TEXT.fullmatch(text):
                return int(text)
            if _FLOAT_TEXT.fullmatch(text):
                return int(float(text))
        except (ValueError, OverflowError):
            raise EvalError(f"`int()` cannot convert {v.describe(value)}: too large") from None
    raise _need("int", "a number or numeric text", value)


def fn_float(value: Any) -> float:
    if v.is_number(value):
        try:
            return float(value)
        except OverflowError:
            raise EvalError("`float()`: number is too large") from None
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value.strip())
    raise _need("float", "a number or numeric text", value)


def fn_str(value: Any) -> str:
    return v.to_text(value)


# -- numbers ---------------------------------------------------------------------------------


def fn_round(value: Any, digits: Any = 0) -> int | float:
    """Half away from zero (2.5 -> 3, 0.125 -> 0.13), on the number as written."""
    x = _num("round", value)
    n = v.as_int_index(digits) if not isinstance(digits, bool) else None
    if n is None or not -20 <= n <= 20:
        raise _need("round", "a whole number of digits between -20 and 20", digits)
    if isinstance(x, float) and not math.isfinite(x):
        return x
    if isinstance(x, int) and n >= 0:
        return x
    try:
        exact = Decimal(repr(x)) if isinstance(x, float) else Decimal(x)
        rounded = exact.quantize(Decimal(1).scaleb(-n), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # beyond decimal precision: nothing left to round
        return int(x) if n <= 0 else x
    return int(rounded) if n <= 0 else float(rounded)


def fn_abs(value: Any) -> int | float:
    return abs(_num("abs", value))


def _extreme(fname: str, op: str, args: tuple[Any, ...]) -> Any:
    items = args[0] if len(args) == 1 and v.is_list(args[0]) else args
    if not items:
        return None
    best = items[0]
    for x in items[1:]:
        try:
            if v.compare(op, x, best):
                best = x
        except EvalError as exc:
            raise EvalError(f"`{fname}()`: {exc.message}", exc.hint) from None
    return best


def fn_min(*args: Any) -> Any:
    return _extreme("min", "<", args)


def fn_max(*args: Any) -> Any:
    return _extreme("max", ">", args)


def fn_sum(items: Any) -> int | float:
    total: int | float = 0
    for x in _list("sum", items):
        total += _num("sum", x)
    return total


# -- objects and lists -----------------------------------------------------------------------


def fn_keys(obj: Any) -> list[Any]:
    return list(_obj("keys", obj).keys())


def fn_values(obj: Any) -> list[Any]:
    return list(_obj("values", obj).values())


def fn_default(value: Any, fallback: Any) -> Any:
    """`fallback` when `value` is null or the empty string (a blank CSV cell)."""
    return fallback if value is None or value == "" else value


def fn_coalesce(*args: Any) -> Any:
    for x in args:
        if x is not None:
            return x
    return None


def _pluck(fname: str, element: Any, path: list[str], position: int) -> Any:
    cur = element
    for name in path:
        if cur is None:
            return None
        if not isinstance(cur, Mapping):
            raise EvalError(
                f"`{fname}()`: element {position} is {v.what(cur)}, not an object with '{name}'"
            )
        cur = cur.get(name)
    return cur


def _field(fname: str, name: Any) -> list[str]:
    text = _str(fname, name)
    if not text or any(not part for part in text.split(".")):
        raise EvalError(f"`{fname}()` needs a field name like 'id' or 'customer.email'")
    return text.split(".")


def fn_unique(items: Any) -> list[Any]:
    seen: set[tuple[str, Any]] = set()
    out: list[Any] = []
    for x in _list("unique", items):
        if x is None or isinstance(x, str | int | float):
            tag = "b" if isinstance(x, bool) else "n" if v.is_number(x) else "s"
            if (tag, x) not in seen:
                seen.add((tag, x))
                out.append(x)
        elif not any(v.equal(x, y) for y in out):
            out.append(x)
    return out


def fn_sort(items: Any, key: Any = None) -> list[Any]:
    """Numbers or strings, ascending; nulls last. `key` sorts objects by a field."""
    elements = list(_list("sort", items))
    path = _field("sort", key) if key is not None else None
    keys = [_pluck("sort", e, path, i) if path else e for i, e in enumerate(elements)]
    kinds = {
        "number" if v.is_number(k) else "string" if isinstance(k, str) else v.type_name(k)
        for k in keys
        if k is not None
    }
    if len(kinds) > 1 or kinds - {"number", "string"}:
        raise EvalError(
            f"`sort()` sorts numbers or strings, got {' and '.join(sorted(kinds))}",
            "pass a field name to sort objects, e.g. `sort(items, 'created')`",
        )
    order = sorted(
        range(len(keys)), key=lambda i: (keys[i] is None, 0 if keys[i] is None else keys[i])
    )
    return [elements[i] for i in order]


def fn_filter(items: Any, name: Any, value: Any) -> list[Any]:
    path = _field("filter", name)
    return [
        e
        for i, e in enumerate(_list("filter", items))
        if v.equal(_pluck("filter", e, path, i), value)
    ]


def fn_map(items: Any, name: Any) -> list[Any]:
    path = _field("map", name)
    return [_pluck("map", e, path, i) for i, e in enumerate(_list("map", items))]


def fn_first(items: Any) -> Any:
    seq = _list("first", items)
    return seq[0] if seq else None


def fn_last(items: Any) -> Any:
    seq = _list("last", items)
    return seq[-1] if seq else None


def fn_any(items: Any) -> bool:
    return any(_list("any", items))


def fn_all(items: Any) -> bool:
    return all(_list("all", items))


def _check_field(position: int) -> Callable[[list[Any]], None]:
    def check(args: list[Any]) -> None:
        if len(args) > position and isinstance(args[position], str):
            try:
                _field("field", args[position])
            except EvalError:
                raise ArgError(
                    position,
                    f"bad field name {v.describe(args[position])}",
                    "use a name like 'id' or a dotted path like 'customer.email'",
                ) from None

    return check


# -- jsonpath --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _jsonpath(path: str) -> Any:
    # Regular expressions (`=~`, `sub(/re/)`) could be made to backtrack for hours; the named
    # extensions in backticks are the only way to reach them.
    if "`" in path or "=~" in path:
        raise EvalError(
            "`jsonpath()` does not allow regular expressions or backtick extensions",
            "filter with comparisons like `$.items[?(@.qty > 0)]`",
        )
    from jsonpath_ng.ext.parser import parse

    try:
        return parse(path)
    except Exception as exc:  # jsonpath-ng raises several exception types for bad paths
        raise EvalError(f"invalid JSONPath {v.describe(path, 60)}: {exc}") from None


def fn_jsonpath(obj: Any, path: Any) -> list[Any]:
    compiled = _jsonpath(_str("jsonpath", path))
    try:
        return [match.value for match in compiled.find(obj)]
    except Exception as exc:  # a third-party evaluator: keep its failures one line
        raise EvalError(f"`jsonpath()` failed: {exc}") from None


def _check_jsonpath(args: list[Any]) -> None:
    if isinstance(args[1], str):
        try:
            _jsonpath(args[1])
        except EvalError as exc:
            raise ArgError(1, exc.message, exc.hint) from None
