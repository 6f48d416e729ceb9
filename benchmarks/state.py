"""Measure the SQLite state store's put_step throughput under group commit.

100 asyncio tasks journal 10,000 items x 3 steps (30,000 `put_step` calls); each task awaits
its own write before issuing the next, as the engine does. Prints the total time and the
average microseconds per write, for synchronous=FULL and NORMAL, on a real file.

    .venv/bin/python benchmarks/state.py [--dir /tmp] [--items 10000] [--tasks 100]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from flowkit.state.base import StepStatus
from flowkit.state.sqlite import SqliteStateStore

STEPS = ("charge", "invoice", "email")


async def bench(directory: str, synchronous: str, n_items: int, n_tasks: int) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db", synchronous=synchronous)
        await store.open()
        try:
            await store.start_run("bench", "bench", "h", time.time())
            keys = [f"ch_{i:06d}" for i in range(n_items)]
            await store.admit_items("bench", [(k, {"amount": 100}) for k in keys], "c", 0.0)
            todo: asyncio.Queue[str] = asyncio.Queue()
            for k in keys:
                todo.put_nowait(k)

            async def worker() -> None:
                while not todo.empty():
                    key = todo.get_nowait()
                    for step in STEPS:
                        await store.put_step(
                            "bench", "bench", key, step, StepStatus.OK, time.time(),
                            output={"id": f"in_{key}"}, attempts=1,
                            idempotency_key=f"bench:{key}:{step}",
                        )  # fmt: skip

            commits0 = store.commits
            start, cpu0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(n_tasks)))
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
            commits = store.commits - commits0
        finally:
            await store.close()
    writes = n_items * len(STEPS)
    print(
        f"synchronous={synchronous:<6} {writes} put_step from {n_tasks} tasks in {elapsed:.2f} s"
        f" = {elapsed / writes * 1e6:.1f} us per write (CPU {cpu / writes * 1e6:.1f} us;"
        f" {commits} commits, {writes / max(commits, 1):.0f} writes each; {directory})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    for sync in ("FULL", "NORMAL"):
        asyncio.run(bench(args.dir, sync, args.items, args.tasks))


if __name__ == "__main__":
    main()
