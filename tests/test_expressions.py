"""The public API of flowkit.expressions, as the recipe loader, validator and engine use it."""

from __future__ import annotations

import dataclasses
import re

import pytest

import flowkit.expressions as fx
from flowkit.errors import ExpressionError, FlowkitError
from flowkit.expressions import (
    FUNCTIONS,
    KNOWN_ROOTS,
    ExpressionSyntaxError,
    Reference,
    Template,
    compile_template,
    find_references,
    has_expression,
    looks_like_unprefixed_template,
    render_value,
)

CTX = {
    "item": {"id": "ch_1", "amount": 1250, "customer": {"email": "ann@example.com"}},
    "steps": {"charges": {"output": {"items": [{"id": "a"}, {"id": "b"}]}}},
}


def test_known_roots() -> None:
    assert (
        frozenset(
            {"steps", "item", "each", "index", "secrets", "vars", "env", "run", "cursor", "error"}
        )
        == KNOWN_ROOTS
    )


def test_every_function_is_documented_in_the_module_docstring() -> None:
    doc = fx.__doc__ or ""
    missing = [name for name in FUNCTIONS if not re.search(rf"\b{name}\(", doc)]
    assert missing == []


def test_functions_mapping_is_read_only_and_callable() -> None:
    assert callable(FUNCTIONS["len"])
    assert FUNCTIONS["len"]([1, 2]) == 2
    with pytest.raises(TypeError):
        FUNCTIONS["evil"] = print  # type: ignore[index]


def test_template_kinds() -> None:
    const = compile_template("plain text")
    assert const.is_constant() and not const.is_single()
    assert const.render({}) == "plain text"
    single = compile_template("  ${{ item.amount }}\n")
    assert single.is_single() and not single.is_constant()
    assert single.render(CTX) == 1250
    mixed = compile_template("id=${{ item.id }}")
    assert not mixed.is_single() and not mixed.is_constant()
    assert mixed.render(CTX) == "id=ch_1"
    two = compile_template("${{ item.id }}${{ item.id }}")
    assert not two.is_single()
    assert two.render(CTX) == "ch_1ch_1"
    assert isinstance(single, Template)
    assert single.source == "  ${{ item.amount }}\n"


def test_compile_template_is_cached() -> None:
    assert compile_template("${{ item.id }} cached") is compile_template("${{ item.id }} cached")


def test_escape_dollar_dollar() -> None:
    t = compile_template("use $${{ item.id }} literally, or ${{ item.id }}")
    assert t.render(CTX) == "use ${{ item.id }} literally, or ch_1"
    only_escape = compile_template("$${{ x }}")
    assert only_escape.is_constant()
    assert only_escape.render({}) == "${{ x }}"
    assert [r.root for r in t.references()] == ["item"]


def test_has_expression() -> None:
    assert has_expression("a ${{ b }}")
    assert not has_expression("a $${{ b }}")
    assert has_expression("$${{ x }} and ${{ y }}")
    assert not has_expression("{{ b }}")
    assert not has_expression("no braces")
    assert not has_expression(12)  # type: ignore[arg-type]


def test_looks_like_unprefixed_template() -> None:
    assert looks_like_unprefixed_template("{{ item.id }}")
    assert looks_like_unprefixed_template("Hello {{ name }}!")
    assert not looks_like_unprefixed_template("${{ item.id }}")
    assert not looks_like_unprefixed_template("plain {text}")
    assert not looks_like_unprefixed_template(None)  # type: ignore[arg-type]


def test_render_value_walks_nested_data_and_keeps_keys() -> None:
    value = {
        "to": "${{ item.customer.email }}",
        "amount": "${{ item.amount / 100 }}",
        "${{ key }}": "kept",
        "lines": [{"id": "${{ steps.charges.output.items[1].id }}"}, 3, None, True],
        "memo": "Charge ${{ item.id }}",
        "n": 5,
        "t": ("${{ item.id }}",),
    }
    assert render_value(value, CTX) == {
        "to": "ann@example.com",
        "amount": 12.5,
        "${{ key }}": "kept",
        "lines": [{"id": "b"}, 3, None, True],
        "memo": "Charge ch_1",
        "n": 5,
        "t": ["ch_1"],
    }
    assert render_value(7, CTX) == 7
    assert render_value("no expression", CTX) == "no expression"


def test_render_raises_expression_error() -> None:
    with pytest.raises(ExpressionError) as info:
        render_value({"x": "${{ item.missing.deeper }}"}, CTX)
    assert isinstance(info.value, FlowkitError)
    assert str(info.value) == (
        "cannot read 'deeper' of null: `item.missing` is null in `item.missing.deeper`"
    )
    assert info.value.hint == "test it first: `item.missing ? item.missing.deeper : null`"


def test_reference_dataclass() -> None:
    ref = Reference("steps", ("charges", "output", "items", 0, "id"), 4)
    assert dataclasses.is_dataclass(ref)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.root = "x"  # type: ignore[misc]
    assert str(ref) == "steps.charges.output.items[0].id"
    assert compile_template("${{ steps.charges.output.items[0].id }}").references() == [ref]


def test_find_references_with_paths() -> None:
    text = "a ${{ steps.charges.output }} b ${{ secrets.KEY }}"
    value = {
        "with": {"to": "${{ item.customer.email }}", "n": 3},
        "list": ["x", text],
        "plain": "{{ not.an.expression }}",
    }
    assert find_references(value) == [
        (("with", "to"), Reference("item", ("customer", "email"), 4)),
        (("list", 1), Reference("steps", ("charges", "output"), text.index("steps"))),
        (("list", 1), Reference("secrets", ("KEY",), text.index("secrets"))),
    ]
    assert text.index("secrets") == 36
    assert find_references("${{ index }}") == [((), Reference("index", (), 4))]
    assert find_references(42) == []


def test_find_references_reports_the_path_of_a_syntax_error() -> None:
    value = {"steps": [{"with": {"ok": "${{ item.id }}", "bad": "x ${{ item. }}"}}]}
    with pytest.raises(ExpressionSyntaxError) as info:
        find_references(value)
    err = info.value
    assert err.path == ("steps", 0, "with", "bad")
    assert err.offset == 12
    assert err.message == "expected a name after `.`, found `}}`"


def test_syntax_error_shape() -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        compile_template("total: ${{ lenn(item.lines) }}")
    err = info.value
    assert isinstance(err, FlowkitError)
    assert err.message == "unknown function `lenn`"
    assert str(err) == err.message
    assert err.offset == 11
    assert err.hint == "did you mean `len`?"
    assert err.path == ()
