"""The step graph: dependencies, deterministic order, cycles as paths."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit.graph import (
    CycleError,
    build_failure_graph,
    build_graph,
    order_steps,
    referenced_steps,
    step_dependencies,
)
from flowkit.recipe.models import Recipe, Step


def recipe(steps: list[dict[str, Any]], on_failure: list[dict[str, Any]] | None = None) -> Recipe:
    return Recipe.model_validate(
        {"flowkit": 1, "name": "g", "steps": steps, "on_failure": on_failure or []}
    )


def test_order_follows_the_file_among_ready_steps() -> None:
    graph = order_steps(["c", "b", "a"], {"b": ["a"]})
    assert graph.order == ["c", "a", "b"]
    graph = order_steps(["z", "y", "x"], {})
    assert graph.order == ["z", "y", "x"]


def test_diamond() -> None:
    graph = order_steps(["a", "b", "c", "d"], {"b": ["a"], "c": ["a"], "d": ["c", "b"]})
    assert graph.order == ["a", "b", "c", "d"]
    assert graph.deps["d"] == frozenset({"b", "c"})
    assert graph.dependents["a"] == frozenset({"b", "c"})
    assert graph.downstream("a") == {"b", "c", "d"}
    assert graph.downstream("d") == set()
    assert graph.upstream("d") == {"a", "b", "c"}


def test_unknown_dependencies_are_dropped() -> None:
    graph = order_steps(["a", "b"], {"a": ["nope"], "b": ["a"]})
    assert graph.deps == {"a": frozenset(), "b": frozenset({"a"})}


@pytest.mark.parametrize(
    ("ids", "deps", "message", "cycle"),
    [
        (["a", "b"], {"a": ["b"], "b": ["a"]}, "dependency cycle: a -> b -> a", ["a", "b", "a"]),
        (["a"], {"a": ["a"]}, "step 'a' depends on itself", ["a", "a"]),
        (
            ["x", "a", "b", "c"],
            {"x": ["c"], "a": ["c"], "b": ["a"], "c": ["b"]},
            "dependency cycle: a -> b -> c -> a",
            ["a", "b", "c", "a"],
        ),
        (
            ["c", "b", "a"],
            {"a": ["c"], "b": ["a"], "c": ["b"]},
            "dependency cycle: c -> a -> b -> c",
            ["c", "a", "b", "c"],
        ),
    ],
)
def test_cycles_are_reported_as_a_path_from_the_first_step_in_the_file(
    ids: list[str], deps: dict[str, list[str]], message: str, cycle: list[str]
) -> None:
    with pytest.raises(CycleError) as info:
        order_steps(ids, deps)
    assert info.value.message == message
    assert info.value.cycle == cycle
    assert info.value.hint == "remove one of the `needs` or `steps.<id>` references"


def test_referenced_steps_reads_every_string() -> None:
    value = {
        "a": "${{ steps.one.output.id }}",
        "b": ["x ${{ steps.two.output }} y", {"c": "${{ len(steps.three.output.items) }}"}],
        "d": "$${{ steps.escaped }}",
        "e": "${{ broken ( }}",
        "f": 12,
        "g": "${{ steps[0] }}",
    }
    assert referenced_steps(value) == {"one", "two", "three"}


def test_dependencies_of_a_step() -> None:
    step = Step.model_validate(
        {
            "id": "s",
            "use": "noop.write",
            "needs": ["a"],
            "with": {"data": {"x": "${{ steps.b.output.id }}"}},
            "if": "${{ steps.c.output.ok }}",
            "for_each": "${{ steps.d.output.items }}",
        }
    )
    assert step_dependencies(step) == {"a", "b", "c", "d"}
    wait = Step.model_validate({"id": "w", "wait": {"until": "${{ steps.e.output.at }}"}})
    assert step_dependencies(wait) == {"e"}


def test_build_graph_of_a_recipe() -> None:
    r = recipe(
        [
            {
                "id": "send",
                "use": "noop.notify",
                "with": {"message": "${{ steps.make.output.id }}"},
            },
            {"id": "make", "use": "noop.write"},
            {"id": "pause", "wait": {"for": "1d"}, "needs": ["send"]},
        ],
        on_failure=[
            {"id": "tell", "use": "noop.notify", "with": {"message": "${{ steps.make.output }}"}},
            {"id": "log", "use": "noop.notify", "needs": ["tell"]},
        ],
    )
    graph = build_graph(r)
    assert graph.order == ["make", "send", "pause"]
    assert graph.deps["send"] == frozenset({"make"})
    hooks = build_failure_graph(r)
    assert hooks.order == ["tell", "log"]
    assert hooks.deps["tell"] == frozenset()  # main steps are read, not waited for


def test_build_graph_raises_on_cycles() -> None:
    r = recipe(
        [
            {"id": "a", "use": "noop.write", "with": {"data": {"x": "${{ steps.b.output }}"}}},
            {"id": "b", "use": "noop.write", "needs": ["a"]},
        ]
    )
    with pytest.raises(CycleError, match=r"a -> b -> a"):
        build_graph(r)
