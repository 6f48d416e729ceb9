"""Steps of an item that are ready together (a wave): one settle, then sends that overlap.

The sends of a wave start in the item's task; the first one that waits goes on there and
the rest start in tasks of their own. These tests use a connector whose calls really wait,
which the no-op connector's never do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    Effect,
    Idempotency,
    Input,
    Output,
)
from flowkit.connectors.registry import Registry
from flowkit.engine.runner import RunOptions, run_recipe
from flowkit.errors import ExitCode
from flowkit.recipe.loader import load_recipe
from flowkit.state.base import StepStatus
from flowkit.state.sqlite import SqliteStateStore

from .conftest import Harness


class MeetInput(Input):
    party: int = Field(2, description="How many calls must be waiting before any goes on.")


class Met(Output):
    order: int


class Meet(Action[MeetInput, Met]):
    """Waits until `party` calls of the same item wait together: only calls that overlap
    ever return (a call that ran alone would wait until the step's timeout)."""

    name = "meet"
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = MeetInput
    Output = Met

    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future[None]]] = {}
        self.arrived = 0

    async def run(self, session: Any, input: MeetInput, call: CallContext) -> Met:
        self.arrived += 1
        order = self.arrived
        group = self.waiting.setdefault(call.item_key, [])
        future = asyncio.get_running_loop().create_future()
        group.append(future)
        if len(group) >= input.party:
            for waiter in group:
                waiter.set_result(None)
        await future
        return Met(order=order)


class Stall(Action[MeetInput, Met]):
    """Never answers: the step's own timeout must end it (and only it)."""

    name = "stall"
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = MeetInput
    Output = Met

    async def run(self, session: Any, input: MeetInput, call: CallContext) -> Met:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")


def _registry() -> Registry:
    return Registry(extra={"gate": Connector("gate", actions=[Meet(), Stall()])})


RECIPE = """\
    flowkit: 1
    name: waves
    trigger:
      use: noop.read
      with: {items: 3}
      key: ${{ item.id }}
    steps:
      - id: quick
        use: noop.write
        with: {data: {id: "${{ item.id }}"}}
      - id: left
        use: gate.meet
        timeout: 5s
        retry: {attempts: 1}
      - id: right
        use: gate.meet
        timeout: 5s
        retry: {attempts: 1}
      - id: after
        use: noop.notify
        needs: [left, right]
        with: {message: "${{ steps.left.output.order }} ${{ steps.right.output.order }}"}
"""


async def test_the_sends_of_a_wave_overlap_when_they_wait(harness: Harness) -> None:
    summary = await harness.run(harness.recipe(RECIPE), registry=_registry())
    assert (summary.done, summary.failed) == (3, 0), summary.errors
    store = await harness.store()
    try:
        for n in (1, 2, 3):
            steps = await store.get_steps("waves", f"item-{n}")
            assert {k: s.status for k, s in steps.items()} == dict.fromkeys(
                ("quick", "left", "right", "after"), StepStatus.OK
            )
    finally:
        await store.close()


async def test_a_timeout_in_a_wave_ends_only_its_own_step(harness: Harness) -> None:
    # `early` is the first send of its wave that waits: it goes on in the item's task, and
    # `left`, `right` and `slow` start in tasks of their own. Each timeout must end its own
    # call only, not the item or a step sent beside it.
    stall = "        use: gate.stall\n        timeout: 0.01\n        retry: {attempts: 1}\n"
    stall += "        on_error: continue\n"
    left, after = "      - id: left\n", "      - id: after\n"
    text = RECIPE.replace(left, "      - id: early\n" + stall + left)
    path = harness.recipe(text.replace(after, "      - id: slow\n" + stall + after))
    summary = await harness.run(path, registry=_registry())
    assert summary.exit_code is ExitCode.OK, summary.errors
    store = await harness.store()
    try:
        steps = await store.get_steps("waves", "item-1")
        assert steps["early"].status is StepStatus.FAILED
        assert steps["slow"].status is StepStatus.FAILED
        assert "timed out" in (steps["slow"].error or "")
        assert steps["left"].status is steps["right"].status is StepStatus.OK
        assert steps["after"].status is StepStatus.OK
    finally:
        await store.close()


class CountingStore(SqliteStateStore):
    """The real store, counting the journal batches that became durable: the count goes up
    before anything awaiting the batch resumes."""

    settled = 0

    def send_journal(self, run_id: str, steps: Any, items: Any, done: Any) -> None:
        durable = asyncio.get_running_loop().create_future()

        def count(future: asyncio.Future[None]) -> None:
            self.settled += 1
            if future.exception() is not None:
                done.set_exception(future.exception())
            else:
                done.set_result(None)

        durable.add_done_callback(count)
        super().send_journal(run_id, steps, items, durable)


class Seen(Output):
    settled: int
    outcome: str | None = None


class PeekInput(Input):
    step: str = Field("", description="A step of this item to look up in the store.")


class Peek(Action[PeekInput, Seen]):
    """Reports how many journal batches were durable when it was called, and the stored
    status of a step of the same item (what a later run would find)."""

    effect = Effect.READ
    Input = PeekInput
    Output = Seen

    def __init__(self, name: str, effect: Effect, store: CountingStore) -> None:
        self.name = name
        self.effect = effect
        self.idempotency = Idempotency.HEADER
        self.store = store

    async def run(self, session: Any, input: PeekInput, call: CallContext) -> Seen:
        settled = self.store.settled
        outcome = None
        if input.step:
            steps = await self.store.get_steps(call.recipe, call.item_key)
            outcome = steps[input.step].status.value if input.step in steps else None
        return Seen(settled=settled, outcome=outcome)


async def test_a_read_beside_a_write_does_not_wait_for_the_commit(harness: Harness) -> None:
    # `look` (a read) and `save` (a write) are ready together. The write waits for its
    # intent's commit; the read goes out at once. `later`, a write that needs the read,
    # goes out only once the read's outcome is durable.
    store = CountingStore(harness.state)
    registry = Registry(
        extra={
            "probe": Connector(
                "probe",
                actions=[
                    Peek("look", Effect.READ, store),
                    Peek("write", Effect.WRITE, store),
                ],
            )
        }
    )
    path = harness.recipe(
        """\
        flowkit: 1
        name: mixed
        steps:
          - id: look
            use: probe.look
          - id: save
            use: probe.write
          - id: later
            use: probe.write
            needs: [look]
            with: {step: look}
        """
    )
    loaded = load_recipe(path, registry=registry)
    await store.open()
    try:
        summary = await run_recipe(
            loaded, store, RunOptions(clock=harness.clock, seed=1, registry=registry)
        )
        assert summary.exit_code is ExitCode.OK, summary.errors
        steps = await store.get_steps("mixed", next(iter(await _keys(store))))
    finally:
        await store.close()
    assert steps["look"].output["settled"] == 0  # sent before the write's intent committed
    assert steps["save"].output["settled"] >= 1  # the write went out after its intent's commit
    assert steps["later"].output["outcome"] == "ok"  # the read's outcome was durable first
    assert steps["later"].output["settled"] >= 2


async def _keys(store: SqliteStateStore) -> list[str]:
    return [item.key for item in await store.list_items("mixed")]
