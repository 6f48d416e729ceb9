"""A hostile recipe can neither reach Python internals nor hang or exhaust memory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from flowkit.errors import ExpressionError, FlowkitError
from flowkit.expressions import (
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    ExpressionSyntaxError,
    compile_template,
    render_value,
)


class Secretive:
    password = "hunter2"

    def __init__(self) -> None:
        self.token = "abc"

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - must never be reached
        raise AssertionError(f"attribute {name} was read")


CTX: dict[str, Any] = {"item": {"id": 1, "obj": Secretive(), "tags": ["a"]}, "k": "__class__"}


@contextmanager
def quick(limit: float = 1.0) -> Iterator[None]:
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < limit


@pytest.mark.parametrize(
    "text",
    [
        "${{ item.__class__ }}",
        "${{ item.__class__.__mro__[1].__subclasses__() }}",
        "${{ item['__class__'] }}",
        '${{ item["__globals__"] }}',
        "${{ ().__class__ }}",
        "${{ [].__class__ }}",
        "${{ ''.__class__ }}",
        "${{ __import__('os').system('true') }}",
        "${{ __builtins__ }}",
        "${{ eval('1') }}",
        "${{ exec('x=1') }}",
        "${{ open('/etc/passwd') }}",
        "${{ getattr(item, 'obj') }}",
        "${{ item.obj.token() }}",
        "${{ lambda: 1 }}",
        "${{ [x for x in item] }}",
        "${{ item; 1 }}",
        "${{ item.id if true else 2 }}",
        "${{ f'{item}' }}",
        "${{ `ls` }}",
        "${{ item.tags.pop() }}",
        "${{ 1 ** 2 }}",
    ],
)
def test_python_internals_are_unreachable(text: str) -> None:
    with pytest.raises(ExpressionSyntaxError):
        compile_template(text)


def test_no_attribute_is_read_from_context_objects() -> None:
    with pytest.raises(ExpressionError, match=r"cannot read 'password' of Secretive"):
        compile_template("${{ item.obj.password }}").render(CTX)
    with pytest.raises(ExpressionError, match=r"cannot read 'token' of Secretive"):
        compile_template("${{ item.obj['token'] }}").render(CTX)


def test_computed_dunder_keys_are_plain_dictionary_lookups() -> None:
    assert compile_template("${{ item[k] }}").render(CTX) is None
    with pytest.raises(ExpressionError, match=r"cannot read '__class__' of a list"):
        compile_template("${{ item.tags[k] }}").render(CTX)
    with pytest.raises(ExpressionError, match=r"cannot read '__class__' of Secretive"):
        compile_template("${{ item.obj[k] }}").render(CTX)


def test_dunder_context_entries_are_not_names() -> None:
    with pytest.raises(ExpressionSyntaxError, match="reserved"):
        compile_template("${{ __now__ }}")


def test_format_cannot_reach_attributes() -> None:
    with pytest.raises(ExpressionSyntaxError, match="bad placeholder"):
        compile_template("${{ format('{0.__class__}', item) }}")
    with pytest.raises(ExpressionError, match="bad placeholder"):
        compile_template("${{ format(f, item) }}").render({**CTX, "f": "{0.__class__}"})
    with pytest.raises(ExpressionError, match="bad placeholder"):
        compile_template("${{ format(f, item) }}").render({**CTX, "f": "{0[id]}"})


# -- size and depth limits ------------------------------------------------------------------


def test_expression_length_is_capped() -> None:
    body = "1" + " + 1" * (MAX_EXPRESSION_LENGTH // 4)
    with quick(), pytest.raises(ExpressionSyntaxError) as info:
        compile_template("x ${{ " + body + " }}")
    assert info.value.message == "expression is longer than 10,000 characters"
    assert info.value.offset == 2


def test_long_string_literal_is_capped() -> None:
    with quick(), pytest.raises(ExpressionSyntaxError, match="longer than"):
        compile_template("${{ '" + "a" * 2_000_000 + "' }}")


def test_unterminated_expression_in_a_huge_value_fails_fast() -> None:
    with quick(), pytest.raises(ExpressionSyntaxError):
        compile_template("a" * 1_000_000 + "${{ x" + " " * 1_000_000)


def test_many_expressions_in_one_value_are_fine() -> None:
    text = " ".join(["${{ item.id }}"] * 5000)
    with quick(2.0):
        assert compile_template(text).render(CTX) == " ".join(["1"] * 5000)


@pytest.mark.parametrize(
    "expr",
    [
        "(" * 200 + "1" + ")" * 200,
        "!" * 500 + "true",
        "-" * 500 + "x",
        "[" * 200 + "]" * 200,
        "len(" * 200 + "'a'" + ")" * 200,
        "1" + " + 1" * 500,
        "a" + " || a" * 500,
        "true ? " * 200 + "1" + " : 2" * 200,
        "a" + "[a" * 200 + "]" * 200,
    ],
)
def test_nesting_is_capped(expr: str) -> None:
    with quick(), pytest.raises(ExpressionSyntaxError) as info:
        compile_template("${{ " + expr + " }}")
    assert info.value.message == f"expression is nested more than {MAX_DEPTH} levels deep"


def test_reasonable_nesting_is_accepted() -> None:
    assert compile_template("${{ " + "(" * 30 + "1" + ")" * 30 + " }}").render({}) == 1
    assert compile_template("${{ 1" + " + 1" * 60 + " }}").render({}) == 61
    long_path = "item" + ".a" * 2000
    with quick(), pytest.raises(ExpressionError) as info:
        compile_template("${{ " + long_path + " }}").render({"item": {}})
    assert str(info.value).startswith("cannot read 'a' of null: `item.a` is null in `item.a.a")
    assert len(str(info.value)) < 200
    deep: dict[str, Any] = {"a": None}
    for _ in range(30):
        deep = {"a": deep}
    path = "item" + ".a" * 40
    with pytest.raises(ExpressionError) as info:
        compile_template("${{ " + path + " }}").render({"item": deep})
    message = str(info.value)
    assert message.startswith("cannot read 'a' of null: `item.a.a.a.a.a.a.a.a.a.a.....a.a.a")
    assert len(message) < 200


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("'a' * 100000000", "result is longer than 1,000,000 characters"),
        ("'ab' * 500001", "result is longer than 1,000,000 characters"),
        ("('a' * 1000000) + 'b'", "result is longer than 1,000,000 characters"),
        ("[0] * 100000000", "result has more than 100,000 elements"),
        ("([0] * 100000) + [1]", "result has more than 100,000 elements"),
        ("replace('a' * 1000, 'a', 'b' * 2000)", "`replace()` result is longer than"),
        ("format('{0}{0}', 'a' * 600000)", "`format()` result is longer than"),
        ("join(['a' * 600000, 'b' * 600000], '')", "result is longer than"),
        ("split('a,' * 200000, ',')", "result has more than 100,000 elements"),
        ("int('9' * 5000)", "`int()` cannot convert"),
        ("from_json('[' * 100000)", "`from_json()` got"),
    ],
)
def test_resource_abuse_is_an_error(expr: str, message: str) -> None:
    with quick(), pytest.raises(ExpressionError) as info:
        compile_template("${{ " + expr + " }}").render({})
    assert str(info.value).startswith(message)


def test_large_numbers_stay_bounded() -> None:
    # depth and length caps bound a product to a few hundred factors: ~8,000 digits
    group = "(" + " * ".join(["99999999999999999999"] * 50) + ")"
    expr = " * ".join([group] * 8)
    with quick():
        value = compile_template("${{ " + expr + " }}").render({})
    assert isinstance(value, int)
    with pytest.raises(ExpressionError, match="number is too large to print"):
        compile_template("x ${{ " + expr + " }}").render({})
    with pytest.raises(ExpressionError, match="number is too large"):
        compile_template("${{ (" + expr + ") / 7 }}").render({})
    assert compile_template("${{ 1e308 * 10 }}").render({}) == float("inf")


def test_circular_context_data_is_an_error_not_a_crash() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ExpressionError, match="cannot convert object to JSON"):
        compile_template("x ${{ item }}").render({"item": loop})
    other: dict[str, Any] = {}
    other["self"] = other
    with pytest.raises(ExpressionError, match="data is nested too deeply"):
        compile_template("${{ a == b }}").render({"a": loop, "b": other})


def test_jsonpath_regular_expressions_are_refused() -> None:
    with quick(), pytest.raises(ExpressionSyntaxError, match="regular expressions"):
        compile_template("${{ jsonpath(item, '$.a[?(@.b =~ \"(a+)+$\")]') }}")
    with pytest.raises(ExpressionSyntaxError, match="backtick"):
        compile_template("${{ jsonpath(item, '$.a.`sub(/(a+)+$/, x)`') }}")


def test_errors_are_flowkit_errors_not_crashes() -> None:
    bad_values: list[Any] = [
        {"a": "${{ item.id.x }}"},
        {"a": ["${{ 1 / 0 }}"]},
        "${{ nope }}",
    ]
    for value in bad_values:
        with pytest.raises(FlowkitError):
            render_value(value, CTX)


def test_messages_never_show_part_of_a_long_value() -> None:
    key = "sk_live_" + "x" * 60
    with pytest.raises(ExpressionError) as info:
        compile_template("${{ secrets.KEY - 1 }}").render({"secrets": {"KEY": key}})
    message = str(info.value)
    assert "sk_live" not in message
    assert "a text of 68 characters" in message
    # a short value is shown whole, so exact-match secret masking still applies to it
    with pytest.raises(ExpressionError, match="'abcd'"):
        compile_template("${{ secrets.PIN - 1 }}").render({"secrets": {"PIN": "abcd"}})


def test_messages_describe_huge_numbers_without_printing_them() -> None:
    expr = " * ".join(["99999999999999999999"] * 50)
    with pytest.raises(ExpressionError, match="to string 'a' and a very large number"):
        compile_template("${{ 'a' - (" + expr + ") }}").render({})
    with pytest.raises(ExpressionError, match="with a very large number"):
        compile_template("${{ 'a' < (" + expr + ") }}").render({})
