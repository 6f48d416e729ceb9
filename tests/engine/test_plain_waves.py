"""The short path for plain waves (`ItemRun.run_plain`) journals exactly what the general
path journals, and hands a wave back to it, untouched, when an input fails.

The run's first item binds the connections on the general path; the items after it take the
short one. So item 1 of each run below is the general path's reference for the others.
"""

from __future__ import annotations

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
