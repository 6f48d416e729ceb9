"""Parsing: literals, precedence, syntax errors with offsets and hints, references."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.expressions import (
    ExpressionSyntaxError,
    Reference,
    compile_expression,
    compile_template,
)


def ev(expr: str, **ctx: Any) -> Any:
    return compile_template("${{ " + expr + " }}").render(ctx)


def syntax_error(text: str) -> ExpressionSyntaxError:
    with pytest.raises(ExpressionSyntaxError) as info:
        compile_template(text)
    return info.value


# -- literals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("12", 12),
        ("-3", -3),
        ("12.5", 12.5),
        ("0.0", 0.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("true", True),
        ("false", False),
        ("null", None),
        ("'single'", "single"),
        ('"double"', "double"),
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'a\\nb\\tc\\\\d\\/'", "a\nb\tc\\d/"),
        ("'caf\\u00e9'", "café"),
        ("'}}'", "}}"),
        ("'${{ nested }}'", "${{ nested }}"),
        ("[]", []),
        ("[1, 'a', null, [true]]", [1, "a", None, [True]]),
        ("[1, 2,]", [1, 2]),
        ("'héllo ünïcode'", "héllo ünïcode"),
    ],
)
def test_literals(expr: str, expected: Any) -> None:
    result = ev(expr)
    assert result == expected
    assert type(result) is type(expected)


def test_list_literal_is_fresh_each_time() -> None:
    t = compile_template("${{ [1, 2] }}")
    first = t.render({})
    first.append(3)
    assert t.render({}) == [1, 2]


# -- precedence and associativity -----------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("100 / 10 / 5", 2),
        ("-2 * 3", -6),
        ("- (2 + 3)", -5),
        ("!false && false", False),
        ("!(false && false)", True),
        ("true || false && false", True),
        ("(true || false) && false", False),
        ("1 + 1 == 2", True),
        ("1 < 2 == true", True),
        ("2 > 1 && 3 > 2", True),
        ("null ?? 1 || 2", 1),
        ("null ?? false || 'x'", "x"),
        ("0 ?? 5", 0),
        ("true ? 1 : 2", 1),
        ("false ? 1 : true ? 2 : 3", 2),
        ("false ? 1 : false ? 2 : 3", 3),
        ("true ? false ? 1 : 2 : 3", 2),
        ("1 + 1 > 1 ? 'big' : 'small'", "big"),
        ("null ?? 2 ? 'y' : 'n'", "y"),
        ("'b' in ['a', 'b'] && 1 < 2", True),
        ("1 + 2 in [3]", True),
        ("!!'x'", True),
        ("--3", 3),
        ("- -3", 3),
        ("!true == false", True),
    ],
)
def test_precedence(expr: str, expected: Any) -> None:
    assert ev(expr) == expected


def test_whitespace_and_newlines_inside_expressions() -> None:
    assert compile_template("${{\n  1 +\n  2\n}}").render({}) == 3
    assert compile_template("${{1+2}}").render({}) == 3


# -- syntax errors: message, offset, hint ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("abc ${{ x", 4, "unterminated `${{`"),
        ("${{ }}", 4, "empty expression"),
        ("${{ 1 + }}", 8, "expression ends too early: a value is missing"),
        ("${{ 1 2 }}", 6, "unexpected number `2`"),
        ("${{ a b }}", 6, "unexpected `b`"),
        ("${{ (1 + 2 }}", 11, "expected `)` to close the `(`, found `}}`"),
        ("${{ 1 + 2) }}", 9, "unexpected `)`"),
        ("${{ a[0 }}", 8, "expected `]` to close the index, found `}}`"),
        ("${{ a[] }}", 5, "empty index `[]`"),
        ("${{ a. }}", 7, "expected a name after `.`, found `}}`"),
        ("${{ a.1 }}", 6, "expected a name after `.`, found number `1`"),
        ("${{ 'abc }}", 4, "unterminated string"),
        ('${{ "abc }}', 4, "unterminated string"),
        ("${{ 'a\\qb' }}", 6, "unknown escape `\\q` in string"),
        ("${{ '\\u12' }}", 5, "`\\u` must be followed by 4 hex digits"),
        ("${{ a = 1 }}", 6, "`=` is not an operator"),
        ("${{ a & b }}", 6, "`&` is not an operator"),
        ("${{ a | lower }}", 6, "`|` is not an operator"),
        ("${{ {'a': 1} }}", 4, "unexpected `{`"),
        ("${{ a } }}", 6, "unexpected `}`"),
        ("${{ #x }}", 4, "unexpected character '#'"),
        ("${{ 12abc }}", 4, "invalid number `12a`"),
        ("${{ a < b < c }}", 10, "comparisons cannot be chained"),
        ("${{ a == b != c }}", 11, "comparisons cannot be chained"),
        ("${{ true ? 1 }}", 13, "expected `:` in `cond ? a : b`, found `}}`"),
        ("${{ 1 : 2 }}", 6, "unexpected `:`"),
        ("${{ in }}", 4, "expected a value before `in`"),
        ("${{ () }}", 4, "empty parentheses `()`"),
        ("${{ [1 2] }}", 7, "expected `,` or `]` in a list, found number `2`"),
        ("${{ len(1 2) }}", 10, "expected `,` or `)` in the call of `len`, found number `2`"),
        ("${{ a[1.5] }}", 5, "an index must be a whole number or a string, not `1.5`"),
        ("${{ a[true] }}", 5, "an index must be a whole number or a string, not `true`"),
        ("${{ a(1) }}", 4, "unknown function `a`"),
        ("${{ a[0](1) }}", 8, "only functions can be called"),
        ("${{ x.lower() }}", 6, "`.lower(...)`: there are no methods, only functions"),
        ("${{ +1 }}", 4, "expected a value, found `+`"),
        ("${{ é }}", 4, "unexpected character 'é'"),
    ],
)
def test_syntax_errors(text: str, offset: int, message: str) -> None:
    err = syntax_error(text)
    assert (err.message, err.offset) == (message, offset)


def test_offsets_are_in_the_full_string_value() -> None:
    text = "Dear ${{ item.name }}, total ${{ item.total + }} today"
    err = syntax_error(text)
    assert err.offset == text.index("}}", text.index("total +"))
    text = "first ${{ ok }} then ${{ 'open"
    assert syntax_error(text).offset == text.index("'open")


def test_hints() -> None:
    assert syntax_error("${{ lenght(x) }}").hint == "did you mean `len`?"
    assert syntax_error("${{ startsWith(a, 'x') }}").hint == "did you mean `starts_with`?"
    assert syntax_error("${{ toJSON(a) }}").hint == "did you mean `to_json`?"
    assert syntax_error("${{ fromJSON(a) }}").hint == "did you mean `from_json`?"
    assert syntax_error("${{ length(a) }}").hint == "did you mean `len`?"
    assert syntax_error("${{ lowr(a) }}").hint == "did you mean `lower`?"
    assert syntax_error("${{ zzzzqqq(a) }}").hint == "the functions are listed in docs"
    assert syntax_error("${{ a = 1 }}").hint == "use `==` to compare"
    assert "lower(x)" in (syntax_error("${{ a | lower }}").hint or "")
    assert syntax_error("${{ x.lower() }}").hint == "write `lower(x)`"
    assert syntax_error("${{ x.y.replace('a') }}").hint == "write `replace(x.y, ...)`"
    assert syntax_error("abc ${{ x").hint == "close the expression with `}}`"
    assert syntax_error("${{ a < b < c }}").hint == "combine them with `&&`, e.g. `a < b && b < c`"


def test_dash_between_names_is_caught_with_a_hint() -> None:
    err = syntax_error("${{ steps.send-email.output }}")
    assert err.message == "`send-email` reads as a subtraction"
    assert err.offset == 10
    assert err.hint == (
        "for a key with a dash write `steps['send-email']`; to subtract, put spaces around `-`"
    )
    assert compile_template("${{ steps['send-email'].output }}").references() == [
        Reference("steps", ("send-email", "output"), 4)
    ]
    # with spaces, or with a number, it is a subtraction
    assert compile_template("${{ a - b }}").render({"a": 5, "b": 2}) == 3
    assert compile_template("${{ a-1 }}").render({"a": 5}) == 4


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("len()", "`len()` takes 1 argument, got 0"),
        ("len(1, 2)", "`len()` takes 1 argument, got 2"),
        ("round(1, 2, 3)", "`round()` takes 1 to 2 arguments, got 3"),
        ("replace('a', 'b')", "`replace()` takes 3 arguments, got 2"),
        ("now(1)", "`now()` takes 0 arguments, got 1"),
        ("coalesce()", "`coalesce()` takes at least 1 argument, got 0"),
        ("format()", "`format()` takes at least 1 argument, got 0"),
    ],
)
def test_arity_is_checked_at_load_time(expr: str, message: str) -> None:
    err = syntax_error("${{ " + expr + " }}")
    assert err.message == message
    assert err.offset == 4
    assert (err.hint or "").startswith("usage: `")


@pytest.mark.parametrize(
    ("expr", "message", "arg"),
    [
        ("duration('3x')", "invalid duration '3x'", "'3x'"),
        ("duration(null)", "`duration()` needs a string, got null", "null"),
        ("timestamp('yesterday')", "`timestamp()` cannot read 'yesterday' as a time", "'y"),
        ("format('{0} {1}', a)", "format string uses {1} but only 1 value(s) follow it", "'{"),
        ("format('{x}', a)", "bad placeholder in format string", "'{"),
        ("format('a } b')", "single `}` in format string", "'a"),
        ("jsonpath(a, '$.[')", "invalid JSONPath", "'$"),
        ("jsonpath(a, '$.x[?(@.n =~ \"a\")]')", "`jsonpath()` does not allow", "'$"),
        ("jsonpath(a, '$.x.`len`')", "`jsonpath()` does not allow", "'$"),
        ("sort(a, '')", "bad field name ''", "''"),
        ("map(a, 'a..b')", "bad field name 'a..b'", "'a"),
        ("filter(a, '', 1)", "bad field name ''", "''"),
    ],
)
def test_literal_arguments_are_checked_at_load_time(expr: str, message: str, arg: str) -> None:
    text = "${{ " + expr + " }}"
    err = syntax_error(text)
    assert err.message.startswith(message)
    assert err.offset == text.index(arg, text.index("("))


def test_non_literal_arguments_are_checked_at_run_time_only() -> None:
    t = compile_template("${{ duration(x) }}")
    assert t.render({"x": "90m"}) == 5400.0


# -- references ------------------------------------------------------------------------------


def refs(text: str) -> list[Reference]:
    return compile_template(text).references()


def test_reference_paths() -> None:
    assert refs("${{ steps.charges.output.items[0].id }}") == [
        Reference("steps", ("charges", "output", "items", 0, "id"), 4)
    ]
    assert refs("${{ item['first-name'] }}") == [Reference("item", ("first-name",), 4)]
    assert refs("${{ item.lines[-1].sku }}") == [Reference("item", ("lines", -1, "sku"), 4)]
    assert refs("${{ item }}") == [Reference("item", (), 4)]
    assert refs("${{ item.true.null.in }}") == [Reference("item", ("true", "null", "in"), 4)]


def test_reference_path_stops_at_dynamic_parts() -> None:
    assert refs("${{ steps.charges.output.items[*].id }}") == [
        Reference("steps", ("charges", "output", "items"), 4)
    ]
    assert refs("${{ steps.x.output.*.id }}") == [Reference("steps", ("x", "output"), 4)]
    assert refs("${{ item.lines[index].sku }}") == [
        Reference("item", ("lines",), 4),
        Reference("index", (), 15),
    ]
    assert refs("${{ item.lines[1 + 1] }}") == [Reference("item", ("lines",), 4)]


def test_references_inside_calls_operators_and_lists() -> None:
    text = "Hi ${{ upper(item.name) }}: ${{ [vars.a, env.B ?? secrets.C][0] }} ${{ run.id }}"
    found = [(r.root, r.path, r.offset) for r in refs(text)]
    assert found == [
        ("item", ("name",), text.index("item")),
        ("vars", ("a",), text.index("vars")),
        ("env", ("B",), text.index("env")),
        ("secrets", ("C",), text.index("secrets")),
        ("run", ("id",), text.index("run")),
    ]


def test_references_of_any_root_name_are_reported() -> None:
    assert refs("${{ charge.id }}") == [Reference("charge", ("id",), 4)]


def test_literals_and_functions_are_not_references() -> None:
    assert refs("${{ now() + duration('1d') }}") == []
    assert refs("${{ 'steps.x' }}") == []
    assert refs("plain") == []


def test_projection_tail_is_not_a_reference() -> None:
    # `.customer.email` applies to each element, not to a context name
    assert refs("${{ item.lines[*].customer.email }}") == [Reference("item", ("lines",), 4)]


def test_compile_expression_without_braces() -> None:
    text = "steps.check.output.ok && item.total > 10"
    expr = compile_expression(text)
    assert [r.root for r in expr.references] == ["steps", "item"]
    assert expr.references[1].offset == text.index("item")
    ctx = {"steps": {"check": {"output": {"ok": True}}}, "item": {"total": 12}}
    assert expr.evaluate(ctx) is True
    with pytest.raises(ExpressionSyntaxError) as info:
        compile_expression("a +")
    assert info.value.offset == 3
