"""The engine end to end in-process: journal, resume, retries, waits, dry run, hooks."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from flowkit.errors import ExitCode
from flowkit.state.base import ItemStatus, StepStatus

from .conftest import Harness

BASIC = """\
    flowkit: 1
    name: basic
    trigger:
      use: noop.read
      with:
        items: ${{ vars.count }}
        cursor: ${{ cursor }}
      key: ${{ item.id }}
      cursor: ${{ output.cursor }}
    vars:
      count: 5
    steps:
      - id: record
        use: noop.write
        with:
          data: {id: "${{ item.id }}", n: "${{ item.n }}"}
      - id: tell
        use: noop.notify
        with:
          message: "recorded ${{ steps.record.output.echo.id }}"
"""


async def test_first_run_processes_every_item_and_second_run_nothing(harness: Harness) -> None:
    path = harness.recipe(BASIC)
    first = await harness.run(path)
    assert (first.listed, first.new, first.done, first.failed) == (5, 5, 5, 0)
    assert first.exit_code is ExitCode.OK
    second = await harness.run(path)
    assert (second.listed, second.new, second.processed) == (0, 0, 0)
    store = await harness.store()
    try:
        assert await store.get_cursor("basic") == "5"
        steps = await store.get_steps("basic", "item-3")
        assert steps["record"].status is StepStatus.OK
        assert steps["record"].output["echo"] == {"id": "item-3", "n": 3}
        assert steps["tell"].output["message"] == f"recorded {steps['record'].output['echo']['id']}"
        assert steps["record"].idempotency_key and steps["record"].fingerprint
    finally:
        await store.close()


async def test_new_items_after_the_cursor_are_picked_up(harness: Harness) -> None:
    path = harness.recipe(BASIC)
    await harness.run(path)
    more = await harness.run(path, variables={"count": 8})
    assert (more.listed, more.new, more.done) == (3, 3, 3)


async def test_transient_errors_are_retried_with_backoff_on_the_fake_clock(
    harness: Harness,
) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: flaky
        steps:
          - id: call
            use: noop.fail
            with: {kind: transient, times: 2}
            retry: {attempts: 4, backoff: 2s, max_delay: 1m, jitter: false}
    """)
    summary = await harness.run(path)
    assert summary.done == 1 and summary.exit_code is ExitCode.OK
    assert harness.clock.slept == [2.0, 4.0]
    retries = [e for e in harness.events if e.kind == "retry"]
    assert [e.data["attempt"] for e in retries] == [1, 2]


async def test_retry_after_is_honoured_up_to_max_delay(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: limited
        steps:
          - id: call
            use: noop.fail
            with: {kind: rate_limited, times: 2, retry_after: 90}
            retry: {attempts: 3, backoff: 1s, max_delay: 1m, jitter: false}
    """)
    summary = await harness.run(path)
    assert summary.done == 1
    assert harness.clock.slept == [60.0, 60.0]


async def test_validation_errors_are_not_retried_and_fail_the_item(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: invalid
        steps:
          - id: call
            use: noop.fail
            with: {kind: validation, times: 5}
            retry: {attempts: 5}
    """)
    summary = await harness.run(path)
    assert summary.failed == 1 and summary.exit_code is ExitCode.FAILED
    assert harness.clock.slept == []
    assert "request rejected as invalid" in summary.errors[0]


async def test_deadline_stops_retrying(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: deadline
        steps:
          - id: call
            use: noop.fail
            with: {kind: timeout, times: 100}
            retry: {attempts: 100, backoff: 10s, max_delay: 10s, deadline: 35s, jitter: false}
    """)
    summary = await harness.run(path)
    assert summary.failed == 1
    assert sum(harness.clock.slept) <= 35.0
    assert len(harness.clock.slept) == 4


async def test_unknown_outcome_of_a_non_idempotent_write_is_not_repeated(
    harness: Harness,
) -> None:
    # noop.notify has no idempotency: a failure that may have been sent becomes UNKNOWN
    path = harness.recipe("""\
        flowkit: 1
        name: unknown
        steps:
          - id: call
            use: noop.fail
            with: {kind: timeout, times: 1, maybe_sent: true}
            retry: {attempts: 3, jitter: false}
    """)
    # noop.fail is idempotent (HEADER), so the same key is retried and succeeds
    summary = await harness.run(path)
    assert summary.done == 1 and harness.clock.slept == [1.0]


async def test_failed_items_are_retried_by_later_runs_up_to_the_limit(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: later
        max_item_failures: 2
        trigger:
          use: noop.read
          with: {items: 1}
          key: ${{ item.id }}
        steps:
          - id: call
            use: noop.fail
            with: {kind: permanent, times: 2}
    """)
    assert (await harness.run(path)).failed == 1
    second = await harness.run(path)
    assert second.failed == 1 and second.processed == 1
    third = await harness.run(path)
    assert third.processed == 0
    store = await harness.store()
    try:
        item = await store.get_item("later", "item-1")
        assert item is not None and item.status is ItemStatus.FAILED and item.failures == 2
        assert await store.retry_items("later", ["item-1"]) == 1
    finally:
        await store.close()
    fourth = await harness.run(path)
    assert fourth.done == 1


async def test_conditions_and_on_error_continue_skip_dependents(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: branches
        trigger:
          use: noop.read
          with: {items: 4}
          key: ${{ item.id }}
        steps:
          - id: even
            if: ${{ item.n % 2 == 0 }}
            use: noop.write
            with: {data: {n: "${{ item.n }}"}}
          - id: after_even
            use: noop.notify
            with: {message: "${{ steps.even.output.id }}"}
          - id: flaky
            use: noop.fail
            with: {kind: permanent, times: 1}
            on_error: continue
          - id: after_flaky
            needs: [flaky]
            use: noop.notify
    """)
    summary = await harness.run(path)
    assert summary.done == 4 and summary.failed == 0
    store = await harness.store()
    try:
        odd = await store.get_steps("branches", "item-1")
        even = await store.get_steps("branches", "item-2")
    finally:
        await store.close()
    assert odd["even"].status is StepStatus.SKIPPED
    assert odd["after_even"].status is StepStatus.SKIPPED
    assert even["after_even"].status is StepStatus.OK
    assert even["flaky"].status is StepStatus.FAILED
    assert even["after_flaky"].status is StepStatus.SKIPPED


async def test_fan_out_keeps_input_order(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: fanout
        steps:
          - id: each_line
            for_each: ${{ [3, 1, 2] }}
            use: noop.write
            with: {data: {pos: "${{ index }}", value: "${{ each }}"}}
          - id: total
            use: noop.notify
            with: {message: "${{ join(steps.each_line.output[*].echo.value, '-') }}"}
    """)
    summary = await harness.run(path)
    assert summary.done == 1
    store = await harness.store()
    try:
        items = await store.list_items("fanout")
        steps = await store.get_steps("fanout", items[0].key)
    finally:
        await store.close()
    assert steps["total"].output["message"] == "3-1-2"
    assert {"each_line[0]", "each_line[1]", "each_line[2]"} <= set(steps)


async def test_durable_wait_parks_the_item_until_a_later_run(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: waits
        trigger:
          use: noop.read
          with: {items: 2}
          key: ${{ item.id }}
        steps:
          - id: first
            use: noop.write
          - id: pause
            needs: [first]
            wait: {for: 3d}
          - id: second
            needs: [pause]
            use: noop.notify
            with: {message: "woke"}
    """)
    first = await harness.run(path)
    assert first.waiting == 2 and first.done == 0 and first.exit_code is ExitCode.OK
    harness.clock.advance(2 * 86400)
    early = await harness.run(path)
    assert early.processed == 0
    harness.clock.advance(86400 + 1)
    due = await harness.run(path)
    assert due.processed == 2 and due.done == 2
    assert [e.step for e in harness.steps("ok") if e.run_id == harness.events[-1].run_id].count(
        "second"
    ) == 2
    again = await harness.run(path)
    assert again.processed == 0


async def test_dry_run_does_not_change_the_state_file(harness: Harness) -> None:
    path = harness.recipe(BASIC)
    await harness.run(path, variables={"count": 2})
    before = hashlib.sha256(harness.state.read_bytes()).hexdigest()
    summary = await harness.run(path, dry_run=True, variables={"count": 4})
    after = hashlib.sha256(harness.state.read_bytes()).hexdigest()
    assert before == after
    plans = [e for e in harness.events if e.kind == "plan"]
    assert summary.planned == len(plans) == 4  # 2 new items x (write + notify)
    assert {p.data["use"] for p in plans} == {"noop.write", "noop.notify"}
    # the simulated write output is valid, so the next step rendered from it
    assert all(p.data["input"] for p in plans)
    real = await harness.run(path, variables={"count": 4})
    assert real.new == 2


async def test_failure_hooks_run_once_per_failure_with_the_error(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: hooks
        steps:
          - id: call
            use: noop.fail
            with: {kind: permanent, times: 5}
        on_failure:
          - id: alert
            use: noop.notify
            with:
              message: "${{ error.step }} failed: ${{ error.kind }} (${{ error.final }})"
    """)
    summary = await harness.run(path)
    assert summary.failed == 1
    hooks = [e for e in harness.events if e.kind == "hook"]
    assert [h.status for h in hooks] == ["ok"]
    store = await harness.store()
    try:
        item = (await store.list_items("hooks"))[0]
        steps = await store.get_steps("hooks", item.key)
    finally:
        await store.close()
    assert steps["on_failure.alert#1"].output["message"] == "call failed: permanent (false)"


def test_state_file_is_where_we_said(harness: Harness, tmp_path: Path) -> None:
    assert harness.state.parent == tmp_path


async def test_every_attempt_is_recorded(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: attempts
        steps:
          - id: call
            use: noop.fail
            with: {kind: transient, times: 2}
            retry: {attempts: 3, jitter: false}
    """)
    summary = await harness.run(path)
    assert summary.done == 1
    store = await harness.store()
    try:
        rows = await store.run_attempts(summary.run_id)
    finally:
        await store.close()
    tries = [(r.step_key, r.attempt, r.outcome, r.error_kind) for r in rows]
    assert tries == [
        ("call", 1, "error", "transient"),
        ("call", 2, "error", "transient"),
        ("call", 3, "ok", None),
    ]


async def test_an_intent_is_history_only_if_its_run_dies_with_it(harness: Harness) -> None:
    path = harness.recipe("""\
        flowkit: 1
        name: intent
        steps:
          - id: tell
            use: noop.notify
            with: {message: hi}
    """)
    summary = await harness.run(path)
    store = await harness.store()
    try:
        rows = await store.run_attempts(summary.run_id)
    finally:
        await store.close()
    assert [(r.step_key, r.outcome) for r in rows] == [("tell", "ok")]
    conn = sqlite3.connect(harness.state)
    try:
        step = conn.execute("SELECT status, run_id FROM steps WHERE step_key = 'tell'").fetchone()
    finally:
        conn.close()
    assert step == ("ok", summary.run_id)  # the run that wrote the record


async def test_new_items_run_with_their_data_as_stored_masked_and_json_shaped(
    harness: Harness,
) -> None:
    # New items run from the admission's records, not from a read of the store: a step
    # must still see the stored copy (the secret masked), as a resumed item would.
    path = harness.recipe("""\
        flowkit: 1
        name: masked
        secrets:
          TOKEN: an API token
        trigger:
          use: noop.read
          with: {items: 2, prefix: "${{ secrets.TOKEN }}"}
          key: ${{ item.n }}
        steps:
          - id: record
            use: noop.write
            with:
              data: {item: "${{ item }}"}
    """)
    summary = await harness.run(path, env={"TOKEN": "tok_SECRET_123"})
    assert (summary.new, summary.done) == (2, 2)
    store = await harness.store()
    try:
        for n in (1, 2):
            item = await store.get_item("masked", str(n))
            assert item is not None and item.data == {"id": f"***-{n}", "n": n}
            record = (await store.get_steps("masked", str(n)))["record"]
            assert record.output["echo"] == {"item": item.data}
            assert record.error is None  # the step never saw the secret, so nothing was masked
    finally:
        await store.close()


def test_relaxed_gc_restores_the_collector_and_leaves_a_callers_freeze_alone() -> None:
    import gc

    from flowkit.engine.runner import GC_THRESHOLD, relaxed_gc

    assert gc.get_freeze_count() == 0  # nothing else in the test process freezes objects
    before = gc.get_threshold()
    with relaxed_gc():
        assert gc.get_threshold()[0] == GC_THRESHOLD
        assert gc.get_freeze_count() > 0  # what existed before the run is not rescanned
        with relaxed_gc():  # a nested run changes nothing
            assert gc.get_threshold()[0] == GC_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a program that froze its own objects keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        with relaxed_gc():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
