"""Coalesce journal writes: every step or item change made in one event-loop tick becomes one
`StateStore.journal` call (one transaction, one queued operation).

Callers either await a change (`put_step`, `set_item`) or queue it and await the returned
future later (`enqueue_step`, `enqueue_item`): the engine lets a step's outcome and the next
step's intent share one transaction, and awaits both before that next step sends anything.
Many items reaching a step boundary together share the cost. The items of a run resume
together when a commit lands, so their next writes fall into the same tick.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowkit.state.base import ItemStatus, ItemWrite, StateStore, StepStatus, StepWrite


class Journal:
    def __init__(self, store: StateStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._steps: list[StepWrite] = []
        self._items: list[ItemWrite] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._batched = hasattr(store, "journal")

    async def put_step(
        self,
        recipe: str,
        item_key: str,
        step_key: str,
        status: StepStatus,
        now: float,
        **fields: Any,
    ) -> None:
        await self.enqueue_step(recipe, item_key, step_key, status, now, **fields)

    def enqueue_step(
        self,
        recipe: str,
        item_key: str,
        step_key: str,
        status: StepStatus,
        now: float,
        **fields: Any,
    ) -> asyncio.Future[None]:
        """Queue a step change; the returned future resolves once it is durable."""
        if not self._batched:
            return asyncio.ensure_future(
                self.store.put_step(self.run_id, recipe, item_key, step_key, status, now, **fields)
            )
        self._steps.append(StepWrite(recipe, item_key, step_key, status, now, **fields))
        return self._future()

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
        if not self._batched:
            return asyncio.ensure_future(
                self.store.set_item(recipe, key, status, now, wake_at=wake_at, error=error)
            )
        self._items.append(ItemWrite(recipe, key, status, now, wake_at, error))
        return self._future()

    def record_attempt(
        self, recipe: str, item_key: str, step_key: str, now: float, **fields: Any
    ) -> None:
        """Append a failed attempt's row (not awaited: it is history, not a promise)."""
        if self._batched:
            self._steps.append(
                StepWrite(
                    recipe, item_key, step_key, StepStatus.FAILED, now, attempt_only=True, **fields
                )
            )
            self._schedule()

    async def set_item(
        self,
        recipe: str,
        key: str,
        status: ItemStatus,
        now: float,
        *,
        wake_at: float | None = None,
        error: str | None = None,
    ) -> None:
        if not self._batched:
            await self.store.set_item(recipe, key, status, now, wake_at=wake_at, error=error)
            return
        self._items.append(ItemWrite(recipe, key, status, now, wake_at, error))
        await self._wait()

    async def _wait(self) -> None:
        await self._future()

    def _future(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._schedule()
        return future

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        steps, self._steps = self._steps, []
        items, self._items = self._items, []
        waiters, self._waiters = self._waiters, []
        self._scheduled = False
        task = asyncio.ensure_future(self.store.journal(self.run_id, steps, items))

        def settle(done: asyncio.Future[None]) -> None:
            exc = None if done.cancelled() else done.exception()
            for waiter in waiters:
                if waiter.done():
                    continue
                if done.cancelled():
                    waiter.cancel()
                elif exc is not None:
                    waiter.set_exception(exc)
                else:
                    waiter.set_result(None)

        task.add_done_callback(settle)
