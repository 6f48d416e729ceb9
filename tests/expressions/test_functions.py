"""Every built-in function: results, edge cases and one-line errors."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from flowkit.errors import ExpressionError
from flowkit.expressions import FUNCTIONS, compile_template

NOW = 1795694400.0  # 2026-11-26T12:00:00Z

CTX: dict[str, Any] = {
    "item": {
        "name": "  Ann Lee ",
        "email": "Ann@Example.COM",
        "tags": ["vip", "eu", "vip"],
        "orders": [
            {"id": 3, "total": 30.5, "status": "paid", "customer": {"email": "c@x"}},
            {"id": 1, "total": 10, "status": "open", "customer": {"email": "a@x"}},
            {"id": 2, "total": None, "status": "paid", "customer": None},
        ],
        "meta": {"b": 2, "a": 1},
        "json": '{"a": [1, 2], "b": null}',
        "blank": "",
        "none": None,
        "created": "2026-11-26T12:00:00Z",
    },
    "__now__": NOW,
}


def ev(expr: str, ctx: dict[str, Any] | None = None) -> Any:
    return compile_template("${{ " + expr + " }}").render(CTX if ctx is None else ctx)


def fails(expr: str, ctx: dict[str, Any] | None = None) -> str:
    with pytest.raises(ExpressionError) as info:
        ev(expr, ctx)
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(f"in `{expr}`")
    return message


CASES: list[tuple[str, Any]] = [
    # len
    ("len('abc')", 3),
    ("len(item.tags)", 3),
    ("len(item.meta)", 2),
    ("len('')", 0),
    # contains
    ("contains('hello', 'ell')", True),
    ("contains('hello', 'xyz')", False),
    ("contains(item.tags, 'eu')", True),
    ("contains(item.tags, 'us')", False),
    ("contains([1, 2], 2.0)", True),
    ("contains([true], 1)", False),
    ("contains(item.meta, 'a')", True),
    # starts_with / ends_with
    ("starts_with('order-12', 'order-')", True),
    ("starts_with('order-12', 'x')", False),
    ("ends_with('file.csv', '.csv')", True),
    ("ends_with('file.csv', '.txt')", False),
    # case and trimming
    ("lower(item.email)", "ann@example.com"),
    ("upper('ab')", "AB"),
    ("trim(item.name)", "Ann Lee"),
    ("trim('--x--', '-')", "x"),
    # replace / split / join
    ("replace('a-b-c', '-', '+')", "a+b+c"),
    ("replace('abc', 'x', 'y')", "abc"),
    ("split('a,b,,c', ',')", ["a", "b", "", "c"]),
    ("split('  a  b ')", ["a", "b"]),
    ("split('abc', '|')", ["abc"]),
    ("join(item.tags, ', ')", "vip, eu, vip"),
    ("join([1, true, null, 'x', 1.5])", "1,true,,x,1.5"),
    ("join([], '-')", ""),
    # format
    ("format('{0} has {1} orders', 'Ann', 3)", "Ann has 3 orders"),
    ("format('{1}{0}{1}', 'a', 'b')", "bab"),
    ("format('{{0}} is {0}', true)", "{0} is true"),
    ("format('no placeholders')", "no placeholders"),
    ("format('{0}', null)", ""),
    ("format('{0}', [1, 2])", "[1,2]"),
    ("format('}}{{')", "}{"),
    # json
    ("to_json(item.meta)", '{"b":2,"a":1}'),
    ("to_json('é')", '"é"'),
    ("to_json(null)", "null"),
    ("from_json(item.json)", {"a": [1, 2], "b": None}),
    ("from_json('12')", 12),
    ("from_json(to_json(item.orders))", CTX["item"]["orders"]),
    # conversions
    ("int('42')", 42),
    ("int(' -7 ')", -7),
    ("int('12.9')", 12),
    ("int(12.9)", 12),
    ("int(-12.9)", -12),
    ("int(5)", 5),
    ("float('12.5')", 12.5),
    ("float('1e3')", 1000.0),
    ("float(3)", 3.0),
    ("str(12)", "12"),
    ("str(12.0)", "12.0"),
    ("str(true)", "true"),
    ("str(null)", ""),
    ("str([1])", "[1]"),
    ("str('x')", "x"),
    # numbers
    ("round(2.5)", 3),
    ("round(-2.5)", -3),
    ("round(0.125, 2)", 0.13),
    ("round(2.675, 2)", 2.68),
    ("round(12.3456, 1)", 12.3),
    ("round(1234, -2)", 1200),
    ("round(1250, -2)", 1300),
    ("round(7, 2)", 7),
    ("round(1e300, 2)", 1e300),
    ("abs(-3)", 3),
    ("abs(2.5)", 2.5),
    ("min(item.tags)", "eu"),
    ("min(3, 1, 2)", 1),
    ("min([4, 2.5])", 2.5),
    ("min([])", None),
    ("min(7)", 7),
    ("max(3, 1, 2)", 3),
    ("max(map(item.orders, 'id'))", 3),
    ("max([])", None),
    ("sum([1, 2, 3])", 6),
    ("sum([1, 2.5])", 3.5),
    ("sum([])", 0),
    # objects
    ("keys(item.meta)", ["b", "a"]),
    ("values(item.meta)", [2, 1]),
    ("default(item.none, 'x')", "x"),
    ("default(item.blank, 'x')", "x"),
    ("default(0, 'x')", 0),
    ("default(false, 'x')", False),
    ("default('v', 'x')", "v"),
    ("coalesce(null, item.none, 0, 5)", 0),
    ("coalesce(null)", None),
    ("coalesce('a')", "a"),
    # lists
    ("unique(item.tags)", ["vip", "eu"]),
    ("unique([1, 1.0, true, '1', null, null])", [1, True, "1", None]),
    ("unique(item.orders[*].customer)", [{"email": "c@x"}, {"email": "a@x"}, None]),
    ("sort([3, 1, 2])", [1, 2, 3]),
    ("sort(['b', 'a', 'c'])", ["a", "b", "c"]),
    ("sort([2, null, 1])", [1, 2, None]),
    ("sort([])", []),
    ("map(sort(item.orders, 'id'), 'id')", [1, 2, 3]),
    ("map(sort(item.orders, 'total'), 'id')", [1, 3, 2]),
    ("map(sort(item.orders, 'customer.email'), 'id')", [1, 3, 2]),
    ("map(filter(item.orders, 'status', 'paid'), 'id')", [3, 2]),
    ("filter(item.orders, 'status', 'refunded')", []),
    ("map(filter(item.orders, 'customer.email', 'a@x'), 'id')", [1]),
    ("map(item.orders, 'total')", [30.5, 10, None]),
    ("map(item.orders, 'customer.email')", ["c@x", "a@x", None]),
    ("first(item.tags)", "vip"),
    ("first([])", None),
    ("last(item.tags)", "vip"),
    ("last([])", None),
    ("any([0, '', 3])", True),
    ("any([0, null])", False),
    ("any([])", False),
    ("all([1, 'a', [0]])", True),
    ("all([1, []])", False),
    ("all([])", True),
    # jsonpath
    ("jsonpath(item, '$.orders[?(@.total > 20)].id')", [3]),
    ("jsonpath(item, '$.orders[*].status')", ["paid", "open", "paid"]),
    ("jsonpath(item, '$.meta.a')", [1]),
    ("jsonpath(item, '$.nothing')", []),
    # time
    ("now()", NOW),
    ("duration('45s')", 45.0),
    ("duration('90m')", 5400.0),
    ("duration('1h30m')", 5400.0),
    ("duration('1h 30m')", 5400.0),
    ("duration('3d')", 259200.0),
    ("duration('2w')", 1209600.0),
    ("duration('1.5h')", 5400.0),
    ("duration('500ms')", 0.5),
    ("duration('120')", 120.0),
    ("duration(60)", 60.0),
    ("timestamp('2026-11-26T12:00:00Z')", NOW),
    ("timestamp('2026-11-26T13:00:00+01:00')", NOW),
    ("timestamp('2026-11-26T07:00:00-05:00')", NOW),
    ("timestamp('2026-11-26T12:00:00')", NOW),
    ("timestamp('2026-11-26 12:00:00Z')", NOW),
    ("timestamp('2026-11-26')", NOW - 12 * 3600),
    ("timestamp('2026-11-26T12:00:00.250Z')", NOW + 0.25),
    ("timestamp(1795694400)", NOW),
    ("timestamp('1795694400')", NOW),
    ("iso(now())", "2026-11-26T12:00:00Z"),
    ("iso(now() + 0.5)", "2026-11-26T12:00:00.500Z"),
    ("iso('2026-11-26T13:00:00+01:00')", "2026-11-26T12:00:00Z"),
    ("iso(0)", "1970-01-01T00:00:00Z"),
    ("date(now())", "2026-11-26"),
    ("date(now() + duration('12h'))", "2026-11-27"),
    ("date(item.created)", "2026-11-26"),
    ("iso(timestamp(item.created) + duration('3d'))", "2026-11-29T12:00:00Z"),
]


@pytest.mark.parametrize(("expr", "expected"), CASES)
def test_functions(expr: str, expected: Any) -> None:
    result = ev(expr)
    assert result == expected
    assert type(result) is type(expected)


def test_every_function_has_a_case() -> None:
    used = {name for name in FUNCTIONS if any(f"{name}(" in expr for expr, _ in CASES)}
    assert used == set(FUNCTIONS)


def test_now_without_a_clock_uses_the_system_time() -> None:
    before = time.time()
    value = ev("now()", {})
    assert before <= value <= time.time()


def test_now_with_a_callable_clock() -> None:
    assert ev("now()", {"__now__": lambda: 12}) == 12.0


def test_timestamp_of_python_dates_in_context() -> None:
    ctx = {"d": date(2026, 11, 26), "t": datetime(2026, 11, 26, 12, tzinfo=UTC)}
    assert ev("timestamp(t)", ctx) == NOW
    assert ev("timestamp(d)", ctx) == NOW - 12 * 3600
    assert ev("date(t)", ctx) == "2026-11-26"


def test_unique_of_unhashable_values() -> None:
    assert ev("unique([[1], [1], [2], [true]])", {}) == [[1], [2], [True]]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("len(null)", "`len()` needs a string, list or object, got null"),
        ("len(5)", "`len()` needs a string, list or object, got number 5"),
        ("contains(null, 'a')", "`contains()` needs a string, list or object to search in"),
        ("contains('abc', 1)", "`contains()` needs a string, got number 1"),
        ("starts_with(1, 'a')", "`starts_with()` needs a string, got number 1"),
        ("ends_with('a', null)", "`ends_with()` needs a string, got null"),
        ("lower(item.none)", "`lower()` needs a string, got null"),
        ("upper(1)", "`upper()` needs a string"),
        ("trim([])", "`trim()` needs a string, got a list of 0"),
        ("replace('abc', '', 'x')", "`replace()` cannot replace an empty string"),
        ("replace(1, 'a', 'b')", "`replace()` needs a string"),
        ("split('abc', '')", "`split()` needs a non-empty separator"),
        ("split(1)", "`split()` needs a string"),
        ("join('abc')", "`join()` needs a list, got string 'abc'"),
        ("join([1], 2)", "`join()` needs a string, got number 2"),
        ("format(f, 1)", "bad placeholder in format string"),
        ("format(1)", "`format()` needs a string"),
        ("from_json('{bad')", "`from_json()` got invalid JSON: Expecting property name"),
        ("from_json(1)", "`from_json()` needs a string"),
        ("int('abc')", "`int()` needs a number or numeric text, got string 'abc'"),
        ("int(true)", "`int()` needs a number or numeric text, got boolean true"),
        ("int(null)", "`int()` needs a number or numeric text, got null"),
        ("int(x)", "`int()` needs a finite number, got number inf"),
        ("float('1_000')", "`float()` needs a number or numeric text"),
        ("float('nan')", "`float()` needs a number or numeric text"),
        ("round('1.5')", "`round()` needs a number, got string '1.5'"),
        ("round(1.5, 0.5)", "`round()` needs a whole number of digits between -20 and 20"),
        ("round(1.5, 99)", "`round()` needs a whole number of digits between -20 and 20"),
        ("abs('1')", "`abs()` needs a number"),
        ("min(1, 'a')", "`min()`: cannot compare string 'a' with number 1 using `<`"),
        ("max([null, 1])", "`max()`: cannot compare number 1 with null using `>`"),
        ("sum([1, '2'])", "`sum()` needs a number, got string '2'"),
        ("sum(5)", "`sum()` needs a list"),
        ("keys([])", "`keys()` needs an object, got a list of 0"),
        ("values('a')", "`values()` needs an object"),
        ("duration(x)", "`duration()` needs a finite number of seconds, got number inf"),
        ("duration(d)", "invalid duration '-5m'"),
        ("timestamp(d)", "`timestamp()` cannot read '-5m' as a time"),
        ("timestamp(true)", "`timestamp()` needs ISO-8601 text or unix seconds"),
        ("iso(1e20)", "`iso()`: 1e+20 is out of range"),
        ("date('x' + 'y')", "`timestamp()` cannot read 'xy' as a time"),
        ("jsonpath(item, p)", "invalid JSONPath '$.['"),
        ("jsonpath(item, 5)", "`jsonpath()` needs a string"),
        ("unique('abc')", "`unique()` needs a list"),
        ("sort([1, 'a'])", "`sort()` sorts numbers or strings, got number and string"),
        ("sort(item.orders)", "`sort()` sorts numbers or strings, got object"),
        ("sort([true, false])", "`sort()` sorts numbers or strings, got boolean"),
        ("sort(item.tags, 'x')", "`sort()`: element 0 is string 'vip', not an object with 'x'"),
        ("filter(item.tags, 'a', 1)", "`filter()`: element 0 is string 'vip'"),
        ("map(null, 'a')", "`map()` needs a list, got null"),
        ("map(item.orders, f)", "`map()` needs a field name like 'id' or 'customer.email'"),
        ("first('abc')", "`first()` needs a list"),
        ("last(null)", "`last()` needs a list"),
        ("any(1)", "`any()` needs a list"),
        ("all(null)", "`all()` needs a list"),
    ],
)
def test_function_errors(expr: str, message: str) -> None:
    ctx = {**CTX, "x": float("inf"), "f": "{x}", "d": "-5m", "p": "$.["}
    if expr == "map(item.orders, f)":
        ctx["f"] = ""
    assert fails(expr, ctx).startswith(message)


def test_sort_does_not_mutate_its_input() -> None:
    data = [3, 1, 2]
    assert ev("sort(x)", {"x": data}) == [1, 2, 3]
    assert data == [3, 1, 2]


def test_jsonpath_error_from_data_is_one_line() -> None:
    # a path computed at run time is checked at run time
    assert fails("jsonpath(item, p)", {**CTX, "p": "$.a[?(@.x =~ 'y')]"}).startswith(
        "`jsonpath()` does not allow regular expressions"
    )
