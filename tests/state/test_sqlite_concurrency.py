"""One writer process and three reader processes: never "database is locked"."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from flowkit.state.sqlite import SqliteStateStore

WRITER = """
import asyncio, sys, time
from flowkit.state.base import ItemStatus, StepStatus
from flowkit.state.sqlite import SqliteStateStore

path, seconds = sys.argv[1], float(sys.argv[2])

async def main():
    async with SqliteStateStore(path) as s:
        await s.start_run("stress", "rec", "h", 0.0)
        deadline = time.monotonic() + seconds
        done = 0

        async def work(w):
            nonlocal done
            j = 0
            while time.monotonic() < deadline:
                key = f"{w}.{j}"
                await s.admit_items("rec", [(key, {"w": w, "j": j})], key, 0.0)
                await s.put_step("stress", "rec", key, "s", StepStatus.OK, 1.0, output={"j": j})
                await s.set_item("rec", key, ItemStatus.DONE, 1.0)
                j += 1
                done += 1

        await asyncio.gather(*(work(w) for w in range(20)))
        await s.finish_run("stress", "ok", {"done": done}, 2.0)
    print(done)

asyncio.run(main())
"""

READER = """
import sys, time
from flowkit.state.sync import SyncStateStore

path, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + seconds
reads = opens = 0
while time.monotonic() < deadline:
    # Like repeated `flowkit runs list` / `flowkit items list` invocations.
    with SyncStateStore(path) as s:
        opens += 1
        for _ in range(20):
            s.list_runs()
            items = s.list_items("rec", limit=50)
            if items:
                s.get_steps("rec", items[-1].key)
                s.get_item("rec", items[0].key)
            s.items_to_run("rec", 0.0, 3)
            s.get_cursor("rec")
            reads += 6
print(reads, opens)
"""


def test_one_writer_three_readers_never_locked(
    db_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    seconds = "2"
    writer = spawn(WRITER, str(db_path), seconds)
    readers = [spawn(READER, str(db_path), seconds) for _ in range(3)]
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert "locked" not in err
    written = int(out)
    assert written > 50
    for reader in readers:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err  # any StateError or sqlite3 error fails the child
        assert "locked" not in err
        reads, opens = map(int, out.split())
        assert reads > 0 and opens > 0
    with contextlib.closing(sqlite3.connect(db_path)) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert c.execute("SELECT COUNT(*) FROM items WHERE status = 'done'").fetchone() == (
            written,
        )


async def test_two_stores_in_one_process_share_the_file(db_path: Path) -> None:
    async with SqliteStateStore(db_path) as a, SqliteStateStore(db_path) as b:
        await a.kv_set("ns", "k", "from a")
        assert await b.kv_get("ns", "k") == "from a"
        await b.admit_items("rec", [("x", 1)], "c", 0.0)
        assert await a.get_cursor("rec") == "c"
