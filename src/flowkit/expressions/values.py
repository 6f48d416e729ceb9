"""Value semantics shared by operators and functions, over JSON-like data only.

Values are None, bool, int, float, str, lists (and tuples) and mappings. Nothing here ever
reads an attribute of a Python object: mappings are read by key, lists by index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

MAX_EXPRESSION_LENGTH = 10_000  # characters between `${{` and `}}`
MAX_DEPTH = 100  # nesting of parentheses, operators, calls and list literals
MAX_TEXT = 1_000_000  # characters in a string an expression builds
MAX_ITEMS = 100_000  # elements in a list an expression builds


class EvalError(Exception):
    """A run-time problem; the template adds the expression text and raises ExpressionError."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_number(value: Any) -> bool:
    """True for int and float, never for bool (true is not 1 here)."""
    t = type(value)
    if t is int or t is float:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def type_name(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if is_list(value):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    except (ValueError, RecursionError) as exc:  # circular data, too deep
        raise EvalError(f"cannot convert {type_name(value)} to JSON: {exc}") from None


def to_text(value: Any) -> str:
    """How a value reads inside text: null -> "", true -> "true", list/object -> JSON."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int:
        try:
            return str(value)
        except ValueError:  # more digits than Python prints
            raise EvalError("number is too large to print") from None
    if t is float:
        return repr(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping) or is_list(value):
        return to_json(value)
    return str(value)


def describe(value: Any, limit: int = 40) -> str:
    """A short rendering of a value for messages: `'abc'`, `12`, `null`, `a list of 3`.

    Longer strings are not shown at all: a cut secret would escape the exact-match masking
    that every printed message goes through."""
    if isinstance(value, str):
        return "'" + value + "'" if len(value) <= limit else f"a text of {len(value)} characters"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a very large number"
    if value is None or isinstance(value, bool | int | float):
        return to_text(value) if value is not None else "null"
    if is_list(value):
        return f"a list of {len(value)}"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def what(value: Any) -> str:
    """Type and value for messages: "string 'abc'", "number 12", "null", "a list of 3"."""
    if value is None:
        return "null"
    text = describe(value)
    if text.startswith(("a ", "an ")):
        return text
    return f"{type_name(value)} {text}"


def check_text(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise EvalError(f"result is longer than {MAX_TEXT:,} characters")
    return text


def check_items(items: list[Any]) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise EvalError(f"result has more than {MAX_ITEMS:,} elements")
    return items


def equal(a: Any, b: Any) -> bool:
    """Strict, deep equality: no type coercion, and true is not 1."""
    if a is b:
        return True
    a_bool, b_bool = isinstance(a, bool), isinstance(b, bool)
    if a_bool or b_bool:
        return a_bool and b_bool and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if is_list(a) and is_list(b):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if len(a) != len(b):
            return False
        return all(k in b and equal(v, b[k]) for k, v in a.items())
    if a is None or b is None or is_list(a) or is_list(b):
        return False
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return False
    return bool(a == b)


def compare(op: str, a: Any, b: Any) -> bool:
    """`<`, `<=`, `>`, `>=` between two numbers or two strings."""
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)
    hint = None
    if isinstance(a, str) != isinstance(b, str) and (is_number(a) or is_number(b)):
        hint = "convert first, e.g. `int(x)` or `float(x)`"
    raise EvalError(
        f"cannot compare {what(a)} with {what(b)} using `{op}`",
        hint,
    )


def add(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return a + b
    if isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_TEXT:
            raise EvalError(f"result is longer than {MAX_TEXT:,} characters")
        return a + b
    if is_list(a) and is_list(b):
        if len(a) + len(b) > MAX_ITEMS:
            raise EvalError(f"result has more than {MAX_ITEMS:,} elements")
        return [*a, *b]
    hint = None
    if isinstance(a, str) or isinstance(b, str):
        hint = "build text with `format('{0}{1}', a, b)` or `str(x)`, or write `a ${{ x }}`"
    raise EvalError(f"cannot add {type_name(a)} and {type_name(b)}", hint)


def _numbers(op: str, a: Any, b: Any) -> None:
    if not (is_number(a) and is_number(b)):
        hint = None
        if isinstance(a, str) or isinstance(b, str):
            hint = "convert text to a number first with `int(x)` or `float(x)`"
        raise EvalError(
            f"cannot apply `{op}` to {what(a)} and {what(b)}",
            hint,
        )


def subtract(a: Any, b: Any) -> Any:
    _numbers("-", a, b)
    return a - b


def multiply(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return a * b
    # repetition: 'ab' * 3, [0] * 3
    seq, count = (a, b) if type(b) is int else (b, a)
    if type(count) is int and (isinstance(seq, str) or is_list(seq)):
        size = len(seq) * max(count, 0)
        if isinstance(seq, str):
            if size > MAX_TEXT:
                raise EvalError(f"result is longer than {MAX_TEXT:,} characters")
            return seq * count
        if size > MAX_ITEMS:
            raise EvalError(f"result has more than {MAX_ITEMS:,} elements")
        return list(seq) * count
    _numbers("*", a, b)
    raise AssertionError("unreachable")  # pragma: no cover


def divide(a: Any, b: Any) -> Any:
    """True division; an exact quotient of two integers stays an integer (1200 / 100 -> 12)."""
    _numbers("/", a, b)
    if b == 0:
        raise EvalError("division by zero")
    if type(a) is int and type(b) is int:
        q, r = divmod(a, b)
        if r == 0:
            return q
    try:
        return a / b
    except OverflowError:
        raise EvalError("number is too large") from None


def modulo(a: Any, b: Any) -> Any:
    _numbers("%", a, b)
    if b == 0:
        raise EvalError("division by zero in `%`")
    return a % b


def negate(a: Any) -> Any:
    if not is_number(a):
        raise EvalError(f"cannot negate {what(a)}")
    return -a


def member(needle: Any, haystack: Any) -> bool:
    """`needle in haystack`: substring, list element, or object key."""
    if isinstance(haystack, str):
        if not isinstance(needle, str):
            raise EvalError(f"`in` a string needs a string on the left, got {type_name(needle)}")
        return needle in haystack
    if is_list(haystack):
        return any(equal(needle, x) for x in haystack)
    if isinstance(haystack, Mapping):
        try:
            return needle in haystack
        except TypeError:  # unhashable: a list or object is never a key
            return False
    raise EvalError(f"cannot look for a value in {type_name(haystack)}")


def as_int_index(value: Any) -> int | None:
    """An index value as int (1.0 counts), or None when it is not a whole number."""
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return None
