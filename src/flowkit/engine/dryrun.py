"""The dry-run store: reads come from the real state store, writes stay in memory.

A dry run sees the real cursor and journals (so it plans exactly what a real run would do next)
but never changes the state file. The one exception is the connector key-value space
(e.g. a rotated OAuth2 refresh token): losing a rotated credential would break the next real run,
so `kv_set` is written through.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from flowkit.state.base import (
    AttemptRecord,
    ItemRecord,
    ItemStatus,
    ItemWrite,
    Lock,
    RunRecord,
    StateStore,
    StepRecord,
    StepStatus,
    StepWrite,
)


class _NoLock:
    def release(self) -> None:
        return None


class OverlayStore:
    def __init__(self, real: StateStore | None) -> None:
        self.real = real
        self.cursor: dict[str, str | None] = {}
        self.items: dict[tuple[str, str], ItemRecord] = {}
        self.steps: dict[tuple[str, str], dict[str, StepRecord]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def lock(self, recipe: str, wait: float = 0.0) -> Lock:
        return _NoLock()

    async def start_run(self, run_id: str, recipe: str, recipe_hash: str, now: float) -> None:
        return None

    async def finish_run(
        self, run_id: str, status: str, summary: dict[str, Any], now: float
    ) -> None:
        return None

    async def record_interrupted(self, run_id: str) -> int:
        return 0  # a dry run changes no history

    async def list_runs(self, recipe: str | None = None, limit: int = 20) -> list[RunRecord]:
        return await self.real.list_runs(recipe, limit) if self.real else []

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self.real.get_run(run_id) if self.real else None

    async def run_attempts(self, run_id: str) -> list[AttemptRecord]:
        return []

    async def get_cursor(self, recipe: str) -> str | None:
        if recipe in self.cursor:
            return self.cursor[recipe]
        return await self.real.get_cursor(recipe) if self.real else None

    async def admit_items(
        self, recipe: str, items: Sequence[tuple[str, Any]], cursor: str | None, now: float
    ) -> int:
        return len(await self.admit_new_items(recipe, items, cursor, now))

    async def admit_new_items(
        self, recipe: str, items: Sequence[tuple[str, Any]], cursor: str | None, now: float
    ) -> list[ItemRecord]:
        new = []
        for key, data in items:
            if (recipe, key) in self.items or await self._real_item(recipe, key) is not None:
                continue
            record = ItemRecord(recipe, key, ItemStatus.PENDING, data, None, None, 0, now)
            self.items[(recipe, key)] = record
            new.append(record)
        if cursor is not None:
            self.cursor[recipe] = cursor
        return new

    async def _real_item(self, recipe: str, key: str) -> ItemRecord | None:
        return await self.real.get_item(recipe, key) if self.real else None

    async def get_item(self, recipe: str, key: str) -> ItemRecord | None:
        return self.items.get((recipe, key)) or await self._real_item(recipe, key)

    async def items_to_run(self, recipe: str, now: float, max_failures: int) -> list[ItemRecord]:
        real = await self.real.items_to_run(recipe, now, max_failures) if self.real else []
        seen = {r.key for r in real}
        fresh = [
            r
            for (rec, key), r in self.items.items()
            if rec == recipe and key not in seen and r.status is ItemStatus.PENDING
        ]
        return [r for r in real if (recipe, r.key) not in self.items] + fresh

    async def list_items(
        self, recipe: str | None = None, status: ItemStatus | None = None, limit: int = 1000
    ) -> list[ItemRecord]:
        return await self.real.list_items(recipe, status, limit) if self.real else []

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
        current = await self.get_item(recipe, key)
        if current is None:
            current = ItemRecord(recipe, key, status, None, None, None, 0, now)
        self.items[(recipe, key)] = dataclasses.replace(
            current, status=status, wake_at=wake_at, error=error, updated_at=now
        )

    async def retry_items(self, recipe: str, keys: Sequence[str] | None) -> int:
        return 0

    async def get_steps(self, recipe: str, item_key: str) -> dict[str, StepRecord]:
        real = await self.real.get_steps(recipe, item_key) if self.real else {}
        return {**real, **self.steps.get((recipe, item_key), {})}

    async def get_steps_many(
        self, recipe: str, item_keys: Sequence[str]
    ) -> dict[str, dict[str, StepRecord]]:
        return {key: await self.get_steps(recipe, key) for key in item_keys}

    async def put_step(
        self,
        run_id: str,
        recipe: str,
        item_key: str,
        step_key: str,
        status: StepStatus,
        now: float,
        *,
        output: Any = None,
        attempts: int = 0,
        error: str | None = None,
        error_kind: str | None = None,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.steps.setdefault((recipe, item_key), {})[step_key] = StepRecord(
            recipe,
            item_key,
            step_key,
            status,
            output,
            attempts,
            error,
            idempotency_key,
            fingerprint,
            now,
        )

    async def journal(
        self, run_id: str, steps: Sequence[StepWrite], items: Sequence[ItemWrite]
    ) -> None:
        for w in steps:
            if w.attempt_only:
                continue
            await self.put_step(
                run_id,
                w.recipe,
                w.item_key,
                w.step_key,
                w.status,
                w.now,
                output=w.output,
                attempts=w.attempts,
                error=w.error,
                error_kind=w.error_kind,
                idempotency_key=w.idempotency_key,
                fingerprint=w.fingerprint,
            )
        for i in items:
            await self.set_item(i.recipe, i.key, i.status, i.now, wake_at=i.wake_at, error=i.error)

    def send_journal(
        self,
        run_id: str,
        steps: Sequence[StepWrite],
        items: Sequence[ItemWrite],
        done: asyncio.Future[None],
    ) -> None:
        task = asyncio.ensure_future(self.journal(run_id, steps, items))

        def settle(task: asyncio.Future[None]) -> None:
            if done.done():
                return
            if task.cancelled():
                asyncio.Future.cancel(done)  # for real, whatever `done`'s own cancel does
            elif (exc := task.exception()) is not None:
                done.set_exception(exc)
            else:
                done.set_result(None)

        task.add_done_callback(settle)

    async def kv_get(self, namespace: str, key: str) -> str | None:
        return await self.real.kv_get(namespace, key) if self.real else None

    async def kv_set(self, namespace: str, key: str, value: str) -> None:
        if self.real is not None:
            await self.real.kv_set(namespace, key, value)
