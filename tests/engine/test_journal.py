"""The engine's journal: one batch per tick, early batches, drain, and a cancel-proof future."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowkit.engine.journal import Batch, Journal
from flowkit.engine.runner import flush_size
from flowkit.errors import StateError
from flowkit.state.base import ItemStatus, StepStatus, StepWrite
from flowkit.state.sqlite import SqliteStateStore

KEYS = [f"i{n}" for n in range(6)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    async with SqliteStateStore(tmp_path / "state.db", writer="thread") as s:
        await s.start_run("run-1", "rec", "h", 1.0)
        await s.admit_items("rec", [(k, {}) for k in KEYS], None, 1.0)
        yield s


def _write(key: str, status: StepStatus, now: float) -> StepWrite:
    return StepWrite("rec", key, "s", status, now)


def _statuses(store: SqliteStateStore) -> dict[str, str]:
    with sqlite3.connect(store.path) as conn:
        return dict(conn.execute("SELECT item_key, status FROM steps").fetchall())


async def test_changes_of_one_tick_share_one_batch_and_one_commit(
    store: SqliteStateStore,
) -> None:
    journal = Journal(store, "run-1")
    before = store.commits
    futures = {journal.enqueue(_write(k, StepStatus.STARTED, 2.0)) for k in KEYS[:3]}
    futures.add(journal.enqueue_item("rec", KEYS[0], ItemStatus.DONE, 2.0))
    assert len(futures) == 1
    await futures.pop()
    assert store.commits == before + 1
    assert _statuses(store) == {k: "started" for k in KEYS[:3]}


async def test_a_full_batch_is_sent_early_and_order_is_kept(store: SqliteStateStore) -> None:
    journal = Journal(store, "run-1", flush_at=2)
    futures = []
    for key in KEYS:  # an intent and its outcome per item, all in one tick
        futures.append(journal.enqueue(_write(key, StepStatus.STARTED, 2.0)))
        futures.append(journal.enqueue(_write(key, StepStatus.OK, 3.0)))
    assert len(set(futures)) == len(KEYS)  # a new batch every 2 changes
    await asyncio.gather(*set(futures))
    assert _statuses(store) == {k: "ok" for k in KEYS}  # no outcome overtook its intent


async def test_drain_waits_for_everything_and_raises_the_first_failure(
    store: SqliteStateStore,
) -> None:
    journal = Journal(store, "run-1", flush_at=2)
    for key in KEYS[:4]:
        journal.enqueue(_write(key, StepStatus.OK, 2.0))  # nobody awaits these
    await journal.drain()
    assert _statuses(store) == {k: "ok" for k in KEYS[:4]}
    journal.enqueue(_write("never-admitted", StepStatus.OK, 3.0))
    await asyncio.sleep(0)  # that batch goes out on its own
    journal.enqueue(_write(KEYS[4], StepStatus.OK, 3.0))
    with pytest.raises(StateError, match="never admitted"):
        await journal.drain()
    assert _statuses(store)[KEYS[4]] == "ok"  # the batch after the failed one still landed
    await journal.drain()  # a failure is raised once


async def test_a_cancelled_waiter_does_not_cancel_the_batch_for_the_others(
    store: SqliteStateStore,
) -> None:
    journal = Journal(store, "run-1")
    batch = journal.enqueue(_write(KEYS[0], StepStatus.OK, 2.0))
    assert isinstance(batch, Batch)
    assert batch.cancel() is False

    async def wait() -> None:
        await batch

    first, second = asyncio.ensure_future(wait()), asyncio.ensure_future(wait())
    await asyncio.sleep(0)
    first.cancel()
    await second  # not cancelled by the first waiter
    with pytest.raises(asyncio.CancelledError):
        await first  # cancelled, once the batch settled
    assert batch.done() and not batch.cancelled()
    assert _statuses(store) == {KEYS[0]: "ok"}


def test_early_batches_hold_about_half_the_items_in_flight() -> None:
    assert [flush_size(c) for c in (1, 8, 64, 256, 1000)] == [16, 16, 32, 128, 128]


async def test_a_batch_sent_to_a_closed_store_fails_its_waiters_and_drain(
    store: SqliteStateStore,
) -> None:
    journal = Journal(store, "run-1")
    await store.close()
    batch = journal.enqueue(_write(KEYS[0], StepStatus.OK, 2.0))
    with pytest.raises(StateError, match="is closed"):
        await batch
    with pytest.raises(StateError, match="is closed"):
        await journal.drain()


async def test_the_store_settles_the_batch_itself(store: SqliteStateStore) -> None:
    # `send_journal` resolves the very future the items await: no task or callback between
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    store.send_journal("run-1", [_write(KEYS[1], StepStatus.OK, 2.0)], [], done)
    assert await done is None
    assert _statuses(store) == {KEYS[1]: "ok"}
