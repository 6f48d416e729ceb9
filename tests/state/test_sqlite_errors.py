"""Bad files, bad disks and busy databases become one-line StateErrors naming the file."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowkit.errors import StateError
from flowkit.state.base import StepStatus
from flowkit.state.sqlite import SqliteStateStore


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make `path` unwritable, also for root (chattr +i), and restore it afterwards."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a path read-only")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StateError) as err:
        await SqliteStateStore(path).open()
    assert one_line(err.value) == (
        f"{path} is not a flowkit state store (not a SQLite database); pass another `--state` path"
    )
    assert path.read_bytes().startswith(b"these are my notes")  # untouched


async def test_sqlite_file_of_another_program(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with contextlib.closing(sqlite3.connect(path)) as c:
        c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        c.commit()
    with pytest.raises(StateError, match="is a SQLite database of another program") as err:
        await SqliteStateStore(path).open()
    assert str(path) in one_line(err.value)
    with contextlib.closing(sqlite3.connect(path)) as c:  # no flowkit table was added
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"orders"}


async def test_corrupt_file(db_path: Path) -> None:
    async with SqliteStateStore(db_path) as s:
        await s.kv_set("a", "b", "c")
    data = bytearray(db_path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # page 1 after the header: the schema
    db_path.write_bytes(bytes(data))
    with pytest.raises(StateError) as err:
        await SqliteStateStore(db_path).open()
    assert one_line(err.value).startswith(f"the state database {db_path} is corrupt (")
    assert "restore a backup" in str(err.value)


async def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StateError, match=f"the state database {tmp_path} is a directory"):
        await SqliteStateStore(tmp_path).open()


async def test_read_only_directory_new_file(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "state.db"
    with read_only(directory), pytest.raises(StateError) as err:
        await SqliteStateStore(path).open()
    assert one_line(err.value).startswith(f"cannot create the state database {path}: ")
    assert "the directory must be writable" in str(err.value)


async def test_read_only_directory_existing_file(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    path = directory / "state.db"
    async with SqliteStateStore(path) as s:
        await s.kv_set("a", "b", "c")
    assert not Path(f"{path}-wal").exists()  # a clean close removes the WAL
    with read_only(directory), pytest.raises(StateError) as err:
        await SqliteStateStore(path).open()
    assert str(path) in one_line(err.value)
    assert "writable" in str(err.value)


async def test_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as s:
        await s.kv_set("a", "b", "c")
    with read_only(path), pytest.raises(StateError) as err:
        await SqliteStateStore(path).open()
    assert str(path) in one_line(err.value)
    assert "writable" in str(err.value)


async def test_disk_full(store: SqliteStateStore, db_path: Path) -> None:
    await store.start_run("r1", "rec", "h", 0.0)
    await store.admit_items("rec", [("a", None), ("b", None)], None, 0.0)

    def limit(pages: int) -> Callable[[sqlite3.Connection], int]:
        def set_limit(c: sqlite3.Connection) -> int:
            return int(c.execute(f"PRAGMA max_page_count = {pages}").fetchone()[0])

        return set_limit

    # PRAGMA max_page_count caps the file on this connection: the disk is "full".
    # (`_write` is the store's private hook to its write connection.)
    used = await store._write(lambda c: int(c.execute("PRAGMA page_count").fetchone()[0]))
    assert await store._write(limit(used)) == used
    big = {"blob": "x" * 200_000}
    with pytest.raises(StateError) as err:
        await store.put_step("r1", "rec", "a", "s", StepStatus.OK, 1.0, output=big)
    assert one_line(err.value).startswith(
        f"cannot write the state database {db_path}: the disk is full"
    )
    assert await store.get_steps("rec", "a") == {}  # nothing half-written

    # Space comes back: the store works again and the file is sound.
    await store._write(limit(1_000_000))
    await store.put_step("r1", "rec", "a", "s", StepStatus.OK, 1.0, output=big)
    assert (await store.get_steps("rec", "a"))["s"].output == big
    ok = await store._write(lambda c: c.execute("PRAGMA integrity_check").fetchone()[0])
    assert ok == "ok"


async def test_busy_past_the_budget_is_a_state_error(db_path: Path, clock: Any) -> None:
    async with SqliteStateStore(db_path) as s:
        await s.kv_set("a", "b", "c")
    s = SqliteStateStore(db_path, clock=clock, busy_timeout=0.02, busy_retry=0.3)
    await s.open()
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StateError) as err:
            await s.kv_set("a", "b", "d")
        assert one_line(err.value) == (
            f"the state database {db_path} stayed locked by another process for over 0.32 s;"
            " try again later"
        )
        assert "database is locked" not in str(err.value)
        assert 0.29 < sum(clock.sleeps) <= 0.3 + 1e-9
        assert max(clock.sleeps) <= 0.5
        # Readers are not blocked by a writer in WAL mode.
        assert await s.kv_get("a", "b") == "c"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await s.close()


async def test_busy_then_released_succeeds(db_path: Path, clock: Any) -> None:
    async with SqliteStateStore(db_path) as s:
        await s.kv_set("a", "b", "c")
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    def release_after_two(n: int) -> None:
        if n == 2:
            holder.execute("ROLLBACK")

    clock.on_sleep = release_after_two
    s = SqliteStateStore(db_path, clock=clock, busy_timeout=0.02, busy_retry=30)
    try:
        await s.open()
        await s.kv_set("a", "b", "d")
        assert await s.kv_get("a", "b") == "d"
        assert len(clock.sleeps) == 2
    finally:
        await s.close()
        holder.close()
