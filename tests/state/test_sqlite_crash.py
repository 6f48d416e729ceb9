"""kill -9 at random points: the file stays sound and no acknowledged write is lost.

A child process journals work like the engine does (admit batches with a cursor, three
put_steps and a set_item per item, from concurrent tasks) and prints each write only after it
returned, i.e. after its commit. The parent SIGKILLs it at a random point, then checks the
Jepsen-style set invariant: every printed write is in the database, the cursor never passed an
unstored item, and `PRAGMA integrity_check` is ok. Several rounds reuse one file, so each
round also recovers the previous round's WAL.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flowkit.state.base import ItemStatus
from flowkit.state.sqlite import SqliteStateStore

CHILD = """
import asyncio, sys
from flowkit.state.base import ItemStatus, StepStatus
from flowkit.state.sqlite import SqliteStateStore

path, rnd = sys.argv[1], sys.argv[2]

def ack(*words):
    sys.stdout.write(" ".join(words) + "\\n")
    sys.stdout.flush()

async def main():
    store = SqliteStateStore(path)
    await store.open()
    run = f"run-{rnd}"
    await store.start_run(run, "crash", "h", 0.0)
    ack("run", run)
    todo = asyncio.Queue()

    async def admitter():
        for b in range(100000):
            keys = [f"{rnd}.{b}.{i}" for i in range(4)]
            await store.admit_items("crash", [(k, {"b": b}) for k in keys], f"{rnd}:{b}", 0.0)
            ack("admit", rnd, str(b), ",".join(keys))
            for k in keys:
                todo.put_nowait(k)
            await asyncio.sleep(0)

    async def worker(w):
        n = 0
        while True:
            key = await todo.get()
            for step in ("charge", "invoice", "email"):
                await store.put_step(run, "crash", key, step, StepStatus.OK, 1.0,
                                     output={"id": f"{step}-{key}"}, attempts=1,
                                     idempotency_key=f"{key}:{step}")
                ack("step", key, step)
            await store.set_item("crash", key, ItemStatus.DONE, 2.0)
            ack("done", key)
            n += 1
            if n % 5 == 0:
                await store.kv_set("crash", f"{rnd}.{w}.{n}", key)
                ack("kv", f"{rnd}.{w}.{n}", key)

    await asyncio.gather(admitter(), *(worker(w) for w in range(30)))

asyncio.run(main())
"""


def check(db_path: Path, lines: list[str]) -> dict[str, int]:
    """Every acknowledged write is present; the file is sound; the cursor is safe."""
    counts = {"run": 0, "admit": 0, "step": 0, "done": 0, "kv": 0}
    with contextlib.closing(sqlite3.connect(db_path)) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        if not c.execute("SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchall():
            assert lines == []  # killed before the schema was committed: nothing was acked
            return counts
        items = dict(c.execute("SELECT item_key, status FROM items").fetchall())
        steps = {
            (k, s): st for k, s, st in c.execute("SELECT item_key, step_key, status FROM steps")
        }
        attempts = set(c.execute("SELECT item_key, step_key FROM attempts").fetchall())
        kv = dict(c.execute("SELECT key, value FROM kv WHERE namespace = 'crash'").fetchall())
        runs = {r[0] for r in c.execute("SELECT id FROM runs")}
        cursor = c.execute("SELECT value FROM cursors WHERE recipe = 'crash'").fetchone()
    last_admit: tuple[str, int] | None = None
    for line in lines:
        kind, *args = line.split()
        counts[kind] += 1
        if kind == "run":
            assert args[0] in runs, line
        elif kind == "admit":
            assert all(k in items for k in args[2].split(",")), line
            last_admit = (args[0], int(args[1]))
        elif kind == "step":
            assert steps.get((args[0], args[1])) == "ok", line
            assert (args[0], args[1]) in attempts, line
        elif kind == "done":
            assert items.get(args[0]) == ItemStatus.DONE.value, line
        elif kind == "kv":
            assert kv.get(args[0]) == args[1], line
    if cursor is not None:  # the cursor never passes an item that is not stored
        rnd, batch = cursor[0].split(":")
        assert all(f"{rnd}.{batch}.{i}" in items for i in range(4)), cursor
    if last_admit is not None:  # and an acknowledged cursor move is not lost
        assert cursor is not None
        rnd, batch = cursor[0].split(":")
        assert rnd == last_admit[0] and int(batch) >= last_admit[1], (cursor, last_admit)
    return counts


def run_round(
    spawn: Callable[..., subprocess.Popen[str]],
    db_path: Path,
    rnd: str,
    kill_after_acks: int | None,
    kill_after_seconds: float | None,
) -> list[str]:
    child = spawn(CHILD, str(db_path), rnd)
    assert child.stdout is not None
    lines: list[str] = []
    if kill_after_seconds is not None:
        time.sleep(kill_after_seconds)
    else:
        assert kill_after_acks is not None
        while len(lines) < kill_after_acks:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
    os.kill(child.pid, signal.SIGKILL)
    rest, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    lines.extend(rest.splitlines(keepends=True))
    # Only complete lines count; a line cut by the kill was never acknowledged in full.
    return [line.rstrip("\n") for line in lines if line.endswith("\n")]


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_points_loses_no_acknowledged_write(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]], seed: int
) -> None:
    rng = random.Random(seed)
    db_path = tmp_path / "state.db"
    total = {"admit": 0, "step": 0, "done": 0, "kv": 0}
    # Round 0 is killed by time, typically while opening or creating the schema.
    plan: list[tuple[int | None, float | None]] = [(None, rng.uniform(0.0, 0.4))]
    plan += [(rng.randint(1, 600), None) for _ in range(4)]
    for i, (acks, seconds) in enumerate(plan):
        lines = run_round(spawn, db_path, f"s{seed}r{i}", acks, seconds)
        counts = check(db_path, lines)
        for k in total:
            total[k] += counts[k]
    assert total["step"] > 0 and total["admit"] > 0, total  # the kills did land mid-work


async def test_the_store_resumes_after_the_kills(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    db_path = tmp_path / "state.db"
    lines = run_round(spawn, db_path, "a", 300, None)
    check(db_path, lines)
    admitted = {k for line in lines if line.startswith("admit") for k in line.split()[3].split(",")}
    done = {line.split()[1] for line in lines if line.startswith("done")}
    async with SqliteStateStore(db_path) as s:
        pending = {i.key for i in await s.items_to_run("crash", 0.0, 1)}
        finished = {i.key for i in await s.list_items("crash", ItemStatus.DONE, 100_000)}
    # Every acknowledged admission is done or due again: nothing is skipped or lost.
    assert admitted <= pending | finished
    assert done <= finished
    assert not (finished & pending)
