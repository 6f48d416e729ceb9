"""A blocking facade over the SQLite state store, for synchronous callers (the CLI's listing
and retry commands)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from flowkit.errors import StateError
from flowkit.state.base import AttemptRecord, ItemRecord, ItemStatus, RunRecord, StepRecord
from flowkit.state.sql.lock import FileLock
from flowkit.state.sqlite import open_store

__all__ = ["SyncStateStore"]


class SyncStateStore:
    """Blocking facade for synchronous callers (CLI listing and retry commands).

    Each call runs on a private event loop, so it must not be used from inside a running
    loop. Use as a context manager: `with SyncStateStore(path) as store: store.list_runs()`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, **options: Any) -> None:
        # CLI listings mostly read: a writer thread starts faster than a writer process
        options.setdefault("writer", "thread")
        self.store = open_store(path, **options)
        self._runner: asyncio.Runner | None = None

    def _call(self, coro: Any) -> Any:
        if self._runner is None:
            coro.close()
            raise StateError(f"the state store {self.store.path} is not open")
        return self._runner.run(coro)

    def open(self) -> None:
        if self._runner is None:
            self._runner = asyncio.Runner()
        try:
            self._runner.run(self.store.open())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                runner.run(self.store.close())
            finally:
                runner.close()

    def __enter__(self) -> SyncStateStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self, recipe: str, wait: float = 0.0) -> FileLock:
        return self.store.lock(recipe, wait)

    def list_runs(self, recipe: str | None = None, limit: int = 20) -> list[RunRecord]:
        result: list[RunRecord] = self._call(self.store.list_runs(recipe, limit))
        return result

    def get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = self._call(self.store.get_run(run_id))
        return result

    def run_attempts(self, run_id: str) -> list[AttemptRecord]:
        result: list[AttemptRecord] = self._call(self.store.run_attempts(run_id))
        return result

    def get_cursor(self, recipe: str) -> str | None:
        result: str | None = self._call(self.store.get_cursor(recipe))
        return result

    def get_item(self, recipe: str, key: str) -> ItemRecord | None:
        result: ItemRecord | None = self._call(self.store.get_item(recipe, key))
        return result

    def list_items(
        self, recipe: str | None = None, status: ItemStatus | None = None, limit: int = 1000
    ) -> list[ItemRecord]:
        result: list[ItemRecord] = self._call(self.store.list_items(recipe, status, limit))
        return result

    def items_to_run(self, recipe: str, now: float, max_failures: int) -> list[ItemRecord]:
        result: list[ItemRecord] = self._call(self.store.items_to_run(recipe, now, max_failures))
        return result

    def retry_items(self, recipe: str, keys: Sequence[str] | None) -> int:
        result: int = self._call(self.store.retry_items(recipe, keys))
        return result

    def get_steps(self, recipe: str, item_key: str) -> dict[str, StepRecord]:
        result: dict[str, StepRecord] = self._call(self.store.get_steps(recipe, item_key))
        return result

    def kv_get(self, namespace: str, key: str) -> str | None:
        result: str | None = self._call(self.store.kv_get(namespace, key))
        return result

    def kv_set(self, namespace: str, key: str, value: str) -> None:
        self._call(self.store.kv_set(namespace, key, value))
