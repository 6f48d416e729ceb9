"""The seam between deciding what runs and running it.

`LocalExecutor` runs item jobs as asyncio tasks in this process with bounded concurrency.
A distributed executor (workers taking jobs from a PostgreSQL-backed queue) implements the same
`Executor` protocol; the journal's per-effect records keep effects exactly-once even when a
queue delivers a job twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    async def run_all(
        self, jobs: Iterable[T], work: Callable[[T], Awaitable[R]], concurrency: int
    ) -> list[R]: ...


class LocalExecutor:
    """Run `work(job)` for every job, at most `concurrency` at a time, results in job order."""

    async def run_all(
        self, jobs: Iterable[T], work: Callable[[T], Awaitable[R]], concurrency: int
    ) -> list[R]:
        items = list(jobs)
        results: list[R | None] = [None] * len(items)
        indexes = iter(range(len(items)))  # shared by the workers: each takes the next job

        async def worker() -> None:
            for index in indexes:
                results[index] = await work(items[index])

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return results  # type: ignore[return-value]
