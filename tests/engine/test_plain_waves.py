"""The short path for plain waves (`ItemRun.run_plain`) journals exactly what the general
path journals, and hands a wave back to it, untouched, when an input fails.

The run's first item binds the connections on the general path; the items after it take the
short one. So item 1 of each run below is the general path's reference for the others.
"""

from __future__ import annotations

from typing import Any

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
from flowkit.state.base import StepRecord, StepStatus

from .conftest import Harness

# Two independent writes (one wave) and a write that needs the first (a second wave), with
# inputs that do not depend on the item: the same request, hence the same fingerprint.
PLAIN = """\
flowkit: 1
name: plain
trigger:
  use: noop.read
  with: {items: 4}
  key: ${{ item.id }}
steps:
  - id: first
    use: noop.write
    with: {data: {fixed: 1}}
  - id: beside
    use: noop.notify
    with: {message: "same text"}
  - id: then
    use: noop.write
    with: {data: {ref: "${{ steps.first.status }}"}}
"""


def _shape(record: StepRecord) -> tuple[object, ...]:
    """What a step's journal row says, without what belongs to its item (key, output ids)."""
    return (
        record.step_key,
        record.status,
        record.attempts,
        record.error,
        record.idempotency_key is not None,
        record.fingerprint,
    )


async def test_the_short_path_journals_what_the_general_path_journals(harness: Harness) -> None:
    summary = await harness.run(harness.recipe(PLAIN))
    assert (summary.done, summary.failed) == (4, 0), summary.as_dict()
    store = await harness.store()
    try:
        journals = [await store.get_steps("plain", f"item-{n}") for n in range(1, 5)]
        attempts = await store.run_attempts(summary.run_id)
    finally:
        await store.close()
    general, *short = journals
    assert sorted(general) == ["beside", "first", "then"]
    for journal in short:
        assert {k: _shape(r) for k, r in journal.items()} == {
            k: _shape(r) for k, r in general.items()
        }
        assert journal["then"].output["echo"] == {"ref": "ok"}
    # one attempt row per step and item, as on the general path
    per_item = [sum(1 for a in attempts if a.item_key == f"item-{n}") for n in range(1, 5)]
    assert per_item == [3, 3, 3, 3]


BAD_INPUT = """\
flowkit: 1
name: bad
trigger:
  use: noop.read
  with: {items: 3}
  key: ${{ item.id }}
steps:
  - id: good
    use: noop.write
    with: {data: {n: "${{ item.n }}"}}
  - id: broken
    use: noop.write
    with: {data: "${{ item.n }}"}
"""


async def test_a_wave_whose_input_fails_goes_to_the_general_path_untouched(
    harness: Harness,
) -> None:
    """`broken`'s input is not a mapping: on the short path the wave is rendered and
    validated before anything is journaled, so the general path runs it as if alone: the
    good write is sent once, the broken step fails with the input error, and no intent of
    it is left behind."""
    summary = await harness.run(harness.recipe(BAD_INPUT))
    assert (summary.done, summary.failed) == (0, 3), summary.as_dict()
    assert all("step broken: input data" in error for error in summary.errors), summary.errors
    store = await harness.store()
    try:
        for n in range(1, 4):
            journal = await store.get_steps("bad", f"item-{n}")
            assert journal["good"].status is StepStatus.OK
            assert journal["good"].attempts == 1
            assert journal["good"].output["echo"] == {"n": n}
            assert journal["broken"].status is StepStatus.FAILED
            assert journal["broken"].idempotency_key is None  # never got as far as an intent
    finally:
        await store.close()
    sent = [e for e in harness.steps("ok") if e.step == "good"]
    assert len(sent) == 3  # one send per item, none repeated by the fallback


class BoomInput(Input):
    n: int = 0


class Boom(Action[BoomInput, Output]):
    """A connector bug: raises something that is not a ConnectorError."""

    name = "boom"
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = BoomInput
    Output = Output

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, session: Any, input: BoomInput, call: CallContext) -> Output:
        self.calls += 1
        raise RuntimeError(f"boom {input.n}")


CRASHING = """\
flowkit: 1
name: crashing
trigger:
  use: noop.read
  with: {items: 3}
  key: ${{ item.id }}
steps:
  - id: first
    use: noop.write
    with: {data: {n: "${{ item.n }}"}}
  - id: bang
    use: bug.boom
    with: {n: "${{ item.n }}"}
    needs: [first]
"""


async def test_a_connector_that_crashes_fails_its_step_once_with_the_traceback_in_debug(
    harness: Harness,
) -> None:
    """An exception that is not a ConnectorError is a bug in the connector: the step fails
    at once (never retried, even with a retry policy), says which exception, and the
    traceback goes to the debug output only. Item 1 runs on the general path, items 2 and 3
    on the short one."""
    boom = Boom()
    registry = Registry(extra={"bug": Connector("bug", actions=[boom])})
    debug: list[str] = []
    summary = await harness.run(harness.recipe(CRASHING), registry=registry, debug=debug.append)
    assert (summary.done, summary.failed) == (0, 3), summary.as_dict()
    for n, error in enumerate(summary.errors, start=1):
        assert f"step bang: bug.boom crashed: RuntimeError: boom {n}" in error, error
    assert boom.calls == 3  # one call per item: a crash is not retried
    assert len(debug) == 3 and all("RuntimeError: boom" in text for text in debug), debug
    store = await harness.store()
    try:
        for n in range(1, 4):
            journal = await store.get_steps("crashing", f"item-{n}")
            assert journal["first"].status is StepStatus.OK
            assert journal["bang"].status is StepStatus.FAILED
            assert journal["bang"].attempts == 1
    finally:
        await store.close()
