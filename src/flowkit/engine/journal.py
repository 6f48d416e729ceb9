"""Coalesce journal writes: every step or item change made in one event-loop tick becomes one
`StateStore.send_journal` call (one transaction, one queued operation).

Callers queue a change (`enqueue`, `enqueue_item`) and await the returned future when
durability matters: the engine lets a step's outcome and the next step's intent share one
transaction, and awaits both before that next step sends anything.
Many items reaching a step boundary together share the cost. The items of a run resume
together when a commit lands, so their next writes fall into the same tick.

All changes queued in one tick share ONE future (the batch's, a `Batch`), which callers await
directly: a cancelled caller cannot cancel it for the others.

A batch is also sent early, once it holds `flush_at` step changes. When many items wake
together (a commit resolves all of them), one batch for all of them would make every item wait
for the same commit while the event loop has nothing left to do; cut into parts, the store
commits the first part while the loop prepares the next, and the items fall out of step. With
the writer process (`flowkit.state.sql.process`) this cut the loop's idle time from about 45
to 10 us per step-item in `benchmarks/engine.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowkit.state.base import ItemStatus, ItemWrite, StateStore, StepStatus, StepWrite


class Batch(asyncio.Future[None]):
    """The future of one journal batch, shared by every caller with a change in it.

    `cancel()` refuses (returns False), so a task cancelled while it awaits the batch does
    not cancel it for the other callers: asyncio then cancels the task itself as soon as the
    batch is settled (a commit is milliseconds). Awaiting it directly saves every waiter a
    future of its own and one event-loop turn; the store settles it itself
    (`StateStore.send_journal`), which saves the turns of a task and a callback in between.
    """

    def cancel(self, msg: Any | None = None) -> bool:
        return False


FLUSH_AT = 64  # step changes per batch before it is sent early (the runner sets its own)


class Journal:
    def __init__(self, store: StateStore, run_id: str, *, flush_at: int = FLUSH_AT) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_at = flush_at
        self._steps: list[StepWrite] = []
        self._items: list[ItemWrite] = []
        # resolves when the batch built in this tick is durable
        self._batch: Batch | None = None
        self._sent: set[Batch] = set()  # sent to the store, not settled yet
        self._failed: list[Batch] = []  # settled with an error, for `drain` to raise

    async def drain(self) -> None:
        """Wait until every change queued so far is settled; raise the first failure.

        Items do not wait for their last changes (final outcome and item status) to be
        durable: the crash window between sending a write and journaling its outcome exists
        anyway, and waiting would only keep the item's concurrency slot. The run drains the
        journal before it records its summary, so nothing is reported before it is durable.
        """
        while self._batch is not None or self._sent:
            if self._batch is not None:
                self._flush()
            # each batch's `_settled` runs before `wait` returns: it was added first
            await asyncio.wait(list(self._sent))
        failed, self._failed = self._failed, []
        errors = [batch.exception() for batch in failed if not batch.cancelled()]
        if errors:
            raise errors[0]  # type: ignore[misc]

    def enqueue(self, write: StepWrite) -> asyncio.Future[None]:
        """Queue a step change built by the caller; the returned future resolves once it is
        durable (the engine's hot path: one StepWrite, no keyword packing)."""
        steps = self._steps
        steps.append(write)
        batch = self._batch or self._future()
        if len(steps) >= self.flush_at:
            self._flush()
        return batch

    def enqueue_item(
        self,
        recipe: str,
        key: str,
        status: ItemStatus,
        now: float,
        *,
        wake_at: float | None = None,
        error: str | None = None,
    ) -> asyncio.Future[None]:
        """Queue an item status change; the returned future resolves once it is durable."""
        # tuple.__new__: see `flowkit.engine.scope.make_tuple`
        self._items.append(tuple.__new__(ItemWrite, (recipe, key, status, now, wake_at, error)))
        return self._future()

    def record_attempt(
        self, recipe: str, item_key: str, step_key: str, now: float, **fields: Any
    ) -> None:
        """Append a failed attempt's row (not awaited: it is history, not a promise)."""
        self.enqueue(
            StepWrite(
                recipe, item_key, step_key, StepStatus.FAILED, now, attempt_only=True, **fields
            )
        )

    def _future(self) -> asyncio.Future[None]:
        """The future of the batch being built in this tick (one for all its changes)."""
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = Batch(loop=loop)
            loop.call_soon(self._flush)
        return batch

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:  # sent early; this is the tick-end call of that batch
            return
        steps, self._steps = self._steps, []
        items, self._items = self._items, []
        self._sent.add(batch)
        batch.add_done_callback(self._settled)
        try:
            self.store.send_journal(self.run_id, steps, items, batch)
        except Exception as exc:  # the store is closed: the changes were never queued
            batch.set_exception(exc)

    def _settled(self, batch: asyncio.Future[None]) -> None:
        self._sent.discard(batch)
        if not batch.cancelled() and batch.exception() is not None:
            self._failed.append(batch)  # type: ignore[arg-type]
