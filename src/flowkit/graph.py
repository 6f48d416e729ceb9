"""The step graph of a recipe: dependencies, a deterministic order and cycle reports.

A step depends on the steps it lists in `needs` and on every step whose output it reads
(`${{ steps.<id>... }}` anywhere in its `with`, `if`, `for_each` or `wait`). The order is a
topological order that, among the steps ready at each point, takes the one written first in
the file, so the same recipe always runs in the same order. `on_failure` hooks form their own
graph (they may read the main steps' outputs, which adds no edge).

This module knows nothing of YAML marks: the loader maps a `CycleError` to file positions.
It uses the stdlib `graphlib` (https://docs.python.org/3/library/graphlib.html).
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowkit.errors import FlowkitError
from flowkit.expressions import ExpressionSyntaxError, compile_template, has_expression
from flowkit.recipe.models import Recipe, Step

__all__ = [
    "CycleError",
    "StepGraph",
    "build_failure_graph",
    "build_graph",
    "order_steps",
    "referenced_steps",
    "step_dependencies",
]


class CycleError(FlowkitError):
    """The steps depend on each other in a circle; `cycle` is the path, first step repeated."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        if len(cycle) == 2:
            message = f"step '{cycle[0]}' depends on itself"
        else:
            message = "dependency cycle: " + " -> ".join(cycle)
        super().__init__(message, hint="remove one of the `needs` or `steps.<id>` references")


@dataclass(frozen=True)
class StepGraph:
    """Direct dependencies and dependents of each step, and the order to run them in."""

    deps: Mapping[str, frozenset[str]]
    dependents: Mapping[str, frozenset[str]]
    order: list[str]

    def downstream(self, step_id: str) -> set[str]:
        """Every step that depends on `step_id`, directly or not (skipped when it fails)."""
        seen: set[str] = set()
        todo = [step_id]
        while todo:
            for child in self.dependents.get(todo.pop(), frozenset()):
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    def upstream(self, step_id: str) -> set[str]:
        """Every step `step_id` depends on, directly or not."""
        seen: set[str] = set()
        todo = [step_id]
        while todo:
            for parent in self.deps.get(todo.pop(), frozenset()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen


def referenced_steps(value: Any) -> set[str]:
    """Ids of steps read as `steps.<id>` in the strings of a nested value.

    Strings whose expressions do not parse are skipped (the loader reports them)."""
    found: set[str] = set()
    todo: list[Any] = [value]
    while todo:
        current = todo.pop()
        if isinstance(current, str):
            if not has_expression(current):
                continue
            try:
                template = compile_template(current)
            except ExpressionSyntaxError:
                continue
            for ref in template.references():
                if ref.root == "steps" and ref.path and isinstance(ref.path[0], str):
                    found.add(ref.path[0])
        elif isinstance(current, Mapping):
            todo.extend(current.values())
        elif isinstance(current, list | tuple):
            todo.extend(current)
    return found


def step_dependencies(step: Step) -> set[str]:
    """`needs` plus the steps referenced in the step's with, if, for_each and wait."""
    values: list[Any] = [step.with_, step.if_, step.for_each]
    if step.wait is not None:
        values.append(step.wait.until)
    return set(step.needs) | referenced_steps(values)


def order_steps(ids: Sequence[str], deps: Mapping[str, Iterable[str]]) -> StepGraph:
    """The graph of `ids` (in file order) with `deps`; edges to unknown ids are dropped.

    Raises CycleError with the cycle starting at the step written first."""
    index = {step_id: i for i, step_id in enumerate(ids)}
    clean = {s: frozenset(d for d in deps.get(s, ()) if d in index) for s in ids}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for step_id in ids:
        sorter.add(step_id, *sorted(clean[step_id], key=index.__getitem__))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = list(exc.args[1])[:-1]  # each node precedes the next; last == first
        start = min(range(len(cycle)), key=lambda i: index[cycle[i]])
        cycle = cycle[start:] + cycle[:start]
        raise CycleError([*cycle, cycle[0]]) from None
    order: list[str] = []
    ready: list[tuple[int, str]] = []
    while sorter.is_active():
        for step_id in sorter.get_ready():
            heapq.heappush(ready, (index[step_id], step_id))
        _, step_id = heapq.heappop(ready)
        order.append(step_id)
        sorter.done(step_id)
    dependents: dict[str, set[str]] = {s: set() for s in ids}
    for step_id, parents in clean.items():
        for parent in parents:
            dependents[parent].add(step_id)
    return StepGraph(
        deps=clean,
        dependents={s: frozenset(d) for s, d in dependents.items()},
        order=order,
    )


def build_graph(recipe: Recipe) -> StepGraph:
    """The graph of the recipe's main `steps`; raises CycleError."""
    return _graph_of(recipe.steps)


def build_failure_graph(recipe: Recipe) -> StepGraph:
    """The graph of the `on_failure` hooks among themselves; raises CycleError."""
    return _graph_of(recipe.on_failure)


def _graph_of(steps: Sequence[Step]) -> StepGraph:
    ids = [step.id for step in steps]
    return order_steps(ids, {step.id: step_dependencies(step) for step in steps})
