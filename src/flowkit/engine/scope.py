"""What the items of one run share, and the values an item's steps pass around.

`RunScope` holds everything common to a run's items (recipe, graph, store, connections, the
journal, compiled step plans, the precomputed waves); `Outcome`, `Send` and `ItemResult` are
what `flowkit.engine.item.ItemRun` produces step by step. Also the helpers those values need:
the input fingerprint, a model's plain JSON form, and `resume`, which lets a hand-stepped
coroutine go on in the task that awaits it.
"""

from __future__ import annotations

import random
import types
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel

from flowkit import jsontext
from flowkit.connectors.base import CallContext, no_debug, short_digest
from flowkit.engine.clock import Clock
from flowkit.engine.connections import Bound, Connections
from flowkit.engine.events import Listener
from flowkit.engine.journal import Journal
from flowkit.errors import ErrorKind
from flowkit.expressions.template import Render
from flowkit.graph import StepGraph
from flowkit.recipe.models import Recipe, Retry, Step
from flowkit.state.base import ItemStatus, StateStore, StepStatus

T = TypeVar("T")


@dataclass
class RunScope:
    """Everything shared by the items of one run."""

    recipe: Recipe
    graph: StepGraph
    store: StateStore
    connections: Connections
    clock: Clock
    run_id: str
    base_context: dict[str, Any]  # vars, env, secrets, run
    listener: Listener
    dry_run: bool = False
    offline: bool = False
    rng: random.Random = field(default_factory=random.Random)
    debug: Callable[[str], None] = no_debug
    by_id: dict[str, Step] = field(default_factory=dict)
    journal: Journal | None = None
    plans: dict[int, StepPlan] = field(default_factory=dict)  # by id() of the step or hook

    # the waves an item runs in while every step completes (see `ItemRun.run`)
    waves: list[tuple[Step, ...]] = field(default_factory=list)
    # each wave's `PlainWave`, False when it is not plain (None: not known yet)
    plain: list[PlainWave | Literal[False] | None] = field(default_factory=list)
    fan_out: bool = False  # some step has `for_each` (a wave with one runs it apart)

    name: str = ""  # the recipe's name (a pydantic model's attribute costs twice a plain one)

    def __post_init__(self) -> None:
        self.name = self.recipe.name
        self.by_id = {step.id: step for step in self.recipe.steps}
        self.fan_out = any(step.for_each is not None for step in self.recipe.steps)
        if self.journal is None:
            self.journal = Journal(self.store, self.run_id)
        self.waves = [tuple(self.by_id[s] for s in wave) for wave in _waves(self.graph)]
        self.plain = [None] * len(self.waves)

    def plain_wave(self, index: int) -> PlainWave | None:
        """The `PlainWave` of `waves[index]`, or None when it is not plain or its steps'
        connections are not all bound yet (the general path binds them: the run's first
        item)."""
        known = self.plain[index]
        if known is None:
            known = _plain(self.waves[index], self.plans, self.dry_run)
            if known is None:  # a connection to bind first: ask again at the next item
                return None
            self.plain[index] = known
        return known or None


@dataclass(slots=True)
class PlainWave:
    """A wave whose steps are plain calls: a connector action each, with no `if`, `wait` or
    `for_each`, all writes or all reads, in a real run. `ItemRun.run_plain` runs it for an
    item with nothing journaled without the general path's checks."""

    entries: tuple[tuple[str, Step, StepPlan], ...]  # step id, step, its bound plan
    settles: bool  # writes: their intents (and what they depend on) are settled first


def _plain(
    steps: tuple[Step, ...], plans: dict[int, StepPlan], dry_run: bool
) -> PlainWave | Literal[False] | None:
    """`steps` as a PlainWave, False when they are not plain, None when a step's connection
    is not bound yet."""
    if dry_run or any(
        s.use is None or s.if_ is not None or s.wait is not None or s.for_each is not None
        for s in steps
    ):
        return False
    bound = [plans.get(id(s)) for s in steps]
    entries = tuple((s.id, s, p) for s, p in zip(steps, bound, strict=True) if p is not None)
    if len(entries) != len(steps):
        return None
    writes = sum(1 for _, _, p in entries if p.is_write)
    if writes not in (0, len(entries)):  # reads beside writes: `ItemRun.mixed_wave`
        return False
    return PlainWave(entries, writes > 0)


def _waves(graph: StepGraph) -> list[list[str]]:
    """The ready sets `ItemRun.run` finds when every step completes: the same for every item,
    so they are worked out once per run."""
    waves: list[list[str]] = []
    done: set[str] = set()
    remaining = list(graph.order)
    while remaining:
        ready = [s for s in remaining if graph.deps[s] <= done]
        if not ready:  # a cycle; the loader reports those, the generic loop stops on them
            break
        waves.append(ready)
        done.update(ready)
        remaining = [s for s in remaining if s not in done]
    return waves


@dataclass(slots=True)
class StepPlan:
    """What a step's calls share within a run, worked out at its first call: the bound
    action, its compiled `with:` and the journal flags, so each call does only its own work."""

    bound: Bound
    render: Render  # the step's `with:`, compiled
    validate: Callable[[Any], BaseModel]  # the action's input model's compiled validator
    is_write: bool
    intent: bool  # a write without natural idempotency: journal an intent before sending
    policy: Retry
    direct: bool  # no connection limit and no timeout: call the action as it is


class Outcome(NamedTuple):
    """What a step came to. A named tuple: the engine builds one per step and item, with
    `make_tuple` on the hot path (no Python-level constructor)."""

    status: StepStatus
    output: Any = None
    error: str | None = None
    kind: ErrorKind | None = None
    wake_at: float | None = None
    attempts: int = 0


@dataclass(slots=True)
class Send:
    """A call worked out up to sending: input validated, key and intent queued. The sends of
    a wave wait for one settle together (`ItemRun.run_wave`)."""

    step: Step
    step_key: str
    plan: StepPlan
    data: BaseModel
    call: CallContext
    fingerprint: str | None
    simulate: bool  # a dry run: print the write instead of sending it
    # a real write: the outcomes it depends on and its own intent must be durable first
    settles: bool
    started: bool = False  # `send` began: the request may be on its way


DONE = (StepStatus.OK, StepStatus.SKIPPED)  # a journaled step that is never repeated


@dataclass
class ItemResult:
    key: str
    status: ItemStatus
    error: str | None = None
    wake_at: float | None = None
    steps: dict[str, str] = field(default_factory=dict)


@types.coroutine
def resume(coro: Coroutine[Any, Any, T], waits_for: Any) -> Generator[Any, Any, T]:
    """Go on running `coro`, which was stepped by hand (`coro.send(None)`) until it yielded
    `waits_for`, in the task that awaits this: what `await coro` would have done from there.
    The task's own cancellation and `close()` reach `coro` as they would through `await`."""
    while True:
        try:
            value = yield waits_for
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # thrown in by the task: a cancellation, mostly
            try:
                waits_for = coro.throw(exc)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                waits_for = coro.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


# A named tuple from a plain tuple of all its fields, without the named tuple's own `__new__`
# (a Python function that `type.__call__` reaches through a slot): 230 against 570 ns for a
# `StepWrite`, 150 against 340 for a `CallContext`. The engine builds several per step.
make_tuple = tuple.__new__


def fingerprint(data: Any) -> str:
    """A short hash of a request's canonical JSON, to detect an edited request on resume."""
    return short_digest(jsontext.canonical(data))


def to_plain(value: Any) -> Any:
    """`value.model_dump(mode="json", by_alias=True)` for a model: the same call of the
    model's compiled serializer, without the Python wrapper (1.7 against 3.0 us)."""
    if isinstance(value, BaseModel):
        return type(value).__pydantic_serializer__.to_python(value, mode="json", by_alias=True)
    return value


MASKED_OUTPUT = "output stored with secrets masked"
NOT_SENT = "the run stopped before sending it; the next run sends it"


class StepError(Exception):
    """A step failed before or outside the connector call (bad input, expression, plugin)."""

    def __init__(self, message: str, kind: ErrorKind = ErrorKind.VALIDATION) -> None:
        super().__init__(message)
        self.kind = kind
