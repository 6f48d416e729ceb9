"""Evaluation: typed results, text rendering, access, operators and run-time errors."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.errors import ExpressionError
from flowkit.expressions import compile_template

CTX: dict[str, Any] = {
    "item": {
        "id": "ch_1",
        "amount": 1250,
        "price": 12.5,
        "whole": 12.0,
        "paid": True,
        "note": None,
        "tags": ["vip", "eu"],
        "meta": {"k": "v", "n": 1},
        "empty": {},
        "customer": {"email": "ann@example.com", "address": None},
        "lines": [
            {"sku": "A", "qty": 2, "customer": {"email": "a@x"}},
            {"sku": "B", "qty": 3, "customer": {"email": "b@x"}},
        ],
        "first-name": "Ann",
        0: "int key",
    },
    "steps": {"charges": {"output": {"items": [{"id": "a"}, {"id": "b"}]}, "status": "ok"}},
    "index": 1,
    "key": "sku",
}


def ev(expr: str, ctx: dict[str, Any] | None = None) -> Any:
    return compile_template("${{ " + expr + " }}").render(CTX if ctx is None else ctx)


def text(template: str, ctx: dict[str, Any] | None = None) -> Any:
    return compile_template(template).render(CTX if ctx is None else ctx)


def error(expr: str, ctx: dict[str, Any] | None = None) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        ev(expr, ctx)
    return info.value


# -- typed results ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("item.amount", 1250),
        ("item.price", 12.5),
        ("item.paid", True),
        ("item.note", None),
        ("item.tags", ["vip", "eu"]),
        ("item.meta", {"k": "v", "n": 1}),
        ("item.amount / 100", 12.5),
        ("1200 / 100", 12),
        ("7 / 2", 3.5),
    ],
)
def test_single_expression_keeps_its_type(expr: str, expected: Any) -> None:
    result = ev(expr)
    assert result == expected
    assert type(result) is type(expected)


def test_single_expression_returns_the_context_value_itself() -> None:
    assert ev("item.tags") is CTX["item"]["tags"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("id ${{ item.id }}", "id ch_1"),
        ("n=${{ item.amount }}", "n=1250"),
        ("p=${{ item.price }}", "p=12.5"),
        ("w=${{ item.whole }}", "w=12.0"),
        ("b=${{ item.paid }}/${{ !item.paid }}", "b=true/false"),
        ("[${{ item.note }}]", "[]"),
        ("t=${{ item.tags }}", 't=["vip","eu"]'),
        ("m=${{ item.meta }}", 'm={"k":"v","n":1}'),
        ("u=${{ 'ünï' }}", "u=ünï"),
        ("${{ item.id }}-${{ item.amount }}", "ch_1-1250"),
        ("  ${{ item.amount }}  ", 1250),
        ("${{ item.id }}}", "ch_1}"),
        ("{${{ item.id }}}", "{ch_1}"),
    ],
)
def test_expressions_embedded_in_text_render_as_text(template: str, expected: Any) -> None:
    assert text(template) == expected


def test_render_is_repeatable_and_independent_of_context_objects() -> None:
    t = compile_template("${{ item.amount * 2 }} and ${{ item.id }}")
    assert t.render(CTX) == "2500 and ch_1"
    assert t.render({"item": {"amount": 1, "id": "x"}}) == "2 and x"


# -- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("item.customer.email", "ann@example.com"),
        ("item['customer']['email']", "ann@example.com"),
        ('item["first-name"]', "Ann"),
        ("item.tags[0]", "vip"),
        ("item.tags[-1]", "eu"),
        ("item.tags[5]", None),
        ("item.tags[-5]", None),
        ("item.missing", None),
        ("item.customer.phone", None),
        ("item.lines[index].sku", "B"),
        ("item.lines[index - 1][key]", "A"),
        ("item.lines[index * 1.0].sku", "B"),
        ("item[0]", "int key"),
        ("item.id[0]", "c"),
        ("item.id[10]", None),
        ("steps.charges.output.items[*].id", ["a", "b"]),
        ("steps.charges.output.items.*.id", ["a", "b"]),
        ("item.lines[*].customer.email", ["a@x", "b@x"]),
        ("item.lines[*]", CTX["item"]["lines"]),
        ("item.lines[*].missing", [None, None]),
        ("item.meta[*]", ["v", 1]),
        ("[[1, 2], [3]][*][0]", [1, 3]),
        ("[[1, 2], [3]][*][*]", [[1, 2], [3]]),
        ("(item.lines[*].sku)[1]", "B"),
        ("[item.id, item.amount][1]", 1250),
        ("len(item.tags)", 2),
        ("item.true", None),
    ],
)
def test_access(expr: str, expected: Any) -> None:
    assert ev(expr) == expected


def test_projection_over_an_empty_list() -> None:
    assert ev("x[*].a", {"x": []}) == []


def test_access_on_tuples_and_other_mappings() -> None:
    from types import MappingProxyType

    ctx = {"item": MappingProxyType({"t": (1, {"a": 2})})}
    assert ev("item.t[1].a", ctx) == 2
    assert ev("item.t[*]", ctx) == [1, {"a": 2}]


# -- operators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2", 3),
        ("1.5 + 1", 2.5),
        ("'a' + 'b'", "ab"),
        ("[1] + [2, 3]", [1, 2, 3]),
        ("5 - 7", -2),
        ("3 * 4", 12),
        ("0.1 * 3", 0.30000000000000004),
        ("'ab' * 3", "ababab"),
        ("3 * 'ab'", "ababab"),
        ("'ab' * 0", ""),
        ("[0] * 3", [0, 0, 0]),
        ("10 / 4", 2.5),
        ("-9 / 3", -3),
        ("9.0 / 3", 3.0),
        ("10 % 3", 1),
        ("-1 % 3", 2),
        ("5.5 % 2", 1.5),
        ("-item.amount", -1250),
        ("1 == 1.0", True),
        ("true == 1", False),
        ("0 == false", False),
        ("null == false", False),
        ("null == null", True),
        ("'1' == 1", False),
        ("[1, [2]] == [1, [2]]", True),
        ("[1, 2] == [1]", False),
        ("[true] == [1]", False),
        ("item.meta == item.meta", True),
        ("item.meta != item.empty", True),
        ("'a' != 'b'", True),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2.5", True),
        ("2 >= 3", False),
        ("'abc' < 'abd'", True),
        ("'b' >= 'a'", True),
        ("'vip' in item.tags", True),
        ("'gold' in item.tags", False),
        ("'ex' in item.customer.email", True),
        ("'k' in item.meta", True),
        ("'z' in item.meta", False),
        ("[1] in item.meta", False),
        ("1.0 in [1]", True),
        ("item.note || 'none'", "none"),
        ("item.id || 'none'", "ch_1"),
        ("item.id && item.amount", 1250),
        ("item.note && item.amount", None),
        ("0 || ''", ""),
        ("[] || 'empty'", "empty"),
        ("item.empty || 'x'", "x"),
        ("item.note ?? 'dflt'", "dflt"),
        ("false ?? 'dflt'", False),
        ("'' ?? 'dflt'", ""),
        ("item.paid ? 'yes' : 'no'", "yes"),
        ("item.tags ? 'has' : 'none'", "has"),
        ("!item.note", True),
        ("!item.tags", False),
        ("![]", True),
    ],
)
def test_operators(expr: str, expected: Any) -> None:
    result = ev(expr)
    assert result == expected
    assert type(result) is type(expected)


def test_logical_operators_short_circuit() -> None:
    # the right side would fail (null.x), but it is never evaluated
    assert ev("false && item.note.x") is False
    assert ev("true || item.note.x") is True
    assert ev("1 ?? item.note.x") == 1
    assert ev("true ? 1 : item.note.x") == 1
    assert ev("false ? item.note.x : 2") == 2


# -- run-time errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (
            "item.customer.address.city",
            "cannot read 'city' of null: `item.customer.address` is null"
            " in `item.customer.address.city`",
        ),
        (
            "item.note[0]",
            "cannot read [0] of null: `item.note` is null in `item.note[0]`",
        ),
        (
            "steps.invoice.output.id",
            "cannot read 'output' of null: `steps.invoice` has no result yet"
            " in `steps.invoice.output.id`",
        ),
        ("item.tags.first", "cannot read 'first' of a list: `item.tags` is a list of 2"),
        ("item.id.x", "cannot read 'x' of string: `item.id` is 'ch_1'"),
        ("item.amount[0]", "cannot index number with [0]: `item.amount` is 1250"),
        ("item.note[*]", "cannot read [*] of null: `item.note` is null"),
        ("item.id[*]", "cannot use [*] on string: `item.id` is 'ch_1'"),
        ("item.lines[*].sku.x", "cannot read 'x' of string: `item.lines[*].sku` is 'A'"),
        ("item.tags[item.paid]", "an index must be a whole number or a string, got boolean true"),
        ("item.tags[index / 2]", "an index must be a whole number or a string, got number 0.5"),
        ("'a' - 1", "cannot apply `-` to string 'a' and number 1 in `'a' - 1`"),
        ("'a' + 1", "cannot add string and number in `'a' + 1`"),
        ("null + 1", "cannot add null and number"),
        ("[1] + 'a'", "cannot add list and string"),
        ("true * 2", "cannot apply `*` to boolean true and number 2"),
        ("'a' * 1.5", "cannot apply `*` to string 'a' and number 1.5"),
        ("1 / 0", "division by zero in `1 / 0`"),
        ("1.5 / 0", "division by zero"),
        ("1 % 0", "division by zero in `%`"),
        ("-'a'", "cannot negate string 'a'"),
        ("1 < 'a'", "cannot compare number 1 with string 'a' using `<`"),
        ("null >= 1", "cannot compare null with number 1 using `>=`"),
        ("[1] < [2]", "cannot compare a list of 1 with a list of 1 using `<`"),
        ("1 in 'abc'", "`in` a string needs a string on the left, got number"),
        ("1 in 5", "cannot look for a value in number"),
        ("'a' in item.note", "cannot look for a value in null"),
        ("nothing", "`nothing` is not available here in `nothing`"),
    ],
)
def test_runtime_errors(expr: str, message: str) -> None:
    err = error(expr)
    assert str(err).startswith(message)
    assert str(err).endswith(f"in `{expr}`")
    assert "\n" not in str(err)


def test_runtime_error_hints() -> None:
    assert error("item.tags.first").hint == (
        "use `item.tags[*].first` to read it from every element, or an index like"
        " `item.tags[0].first`"
    )
    assert error("steps.invoice.output.id").hint == (
        "check the step id, and that this step runs after it (`needs:`)"
    )
    assert error("'a' - 1").hint == "convert text to a number first with `int(x)` or `float(x)`"
    assert "format(" in (error("'a' + 1").hint or "")
    assert error("1 < 'a'").hint == "convert first, e.g. `int(x)` or `float(x)`"
    assert error("nothing").hint == "available names: index, item, key, steps"
    assert error("x", {"__now__": 5}).hint is None
    assert error("x", {1: "a", "y": 2}).hint == "available names: 1, y"


def test_error_quotes_long_expressions_shortened() -> None:
    expr = "item.note.x + " + " + ".join(["1"] * 60)
    message = str(error(expr))
    assert message.endswith("...`")
    assert len(message) < 200


def test_error_in_embedded_text_names_the_failing_expression() -> None:
    with pytest.raises(ExpressionError) as info:
        text("ok ${{ item.id }} bad ${{ item.note.x }}")
    assert str(info.value) == ("cannot read 'x' of null: `item.note` is null in `item.note.x`")


def test_non_json_values_in_context() -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    ctx = {"item": {"obj": Thing()}}
    assert text("${{ item.obj }}!", ctx) == "thing!"
    assert text("${{ [item.obj] }}", ctx) == [ctx["item"]["obj"]]
    assert text("x ${{ [item.obj] }}", ctx) == 'x ["thing"]'
    with pytest.raises(ExpressionError, match=r"cannot read 'x' of Thing"):
        ev("item.obj.x", ctx)
