"""The writer process: same results as the thread, ordered hand-over, and it dies with us."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flowkit.errors import StateError
from flowkit.state import sqlite as sqlite_module
from flowkit.state.base import ItemStatus, ItemWrite, StepStatus, StepWrite
from flowkit.state.sqlite import SqliteStateStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the writer process is POSIX-only")


def _children(store: SqliteStateStore) -> list[int]:
    writer = store._writer  # white-box: the pid proves which process wrote
    proc = getattr(writer, "_proc", None)
    return [proc.pid] if proc is not None else []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


async def _admit(store: SqliteStateStore, keys: list[str]) -> None:
    await store.start_run("run-1", "rec", "h", 1.0)
    await store.admit_items("rec", [(k, {"k": k}) for k in keys], None, 1.0)


async def test_the_process_writer_commits_what_the_thread_writer_would(db_path: Path) -> None:
    async with SqliteStateStore(db_path, writer="process") as store:
        await store.wait_writer()
        assert store.writer_in_use == "process"
        await _admit(store, ["a", "b"])
        await store.journal(
            "run-1",
            [
                StepWrite("rec", "a", "s1", StepStatus.STARTED, 2.0, idempotency_key="k1"),
                StepWrite("rec", "b", "s1", StepStatus.OK, 2.0, output={"id": 7}, attempts=1),
            ],
            [],
        )
        await store.journal(
            "run-1",
            [StepWrite("rec", "a", "s1", StepStatus.OK, 3.0, output=[1, "x"], attempts=1)],
            [],
        )
        await store.set_item("rec", "a", ItemStatus.DONE, 3.0)
        assert store.commits > 0
    async with SqliteStateStore(db_path, writer="thread") as store:
        steps = await store.get_steps("rec", "a")
        assert steps["s1"].status is StepStatus.OK
        assert steps["s1"].output == [1, "x"]
        assert steps["s1"].idempotency_key == "k1"  # kept from the intent
        assert (await store.get_steps("rec", "b"))["s1"].output == {"id": 7}
        assert (await store.get_item("rec", "a")).status is ItemStatus.DONE  # type: ignore[union-attr]
        attempts = await store.run_attempts("run-1")
        assert [(a.item_key, a.outcome) for a in attempts] == [("b", "ok"), ("a", "ok")]


async def test_secrets_are_masked_before_rows_leave_for_the_writer_process(
    db_path: Path,
) -> None:
    from flowkit import redact

    redact.register("sk_live_PROCESS42")
    async with SqliteStateStore(db_path, writer="process") as store:
        await store.wait_writer()
        await _admit(store, ["a"])
        await store.journal(
            "run-1",
            [
                StepWrite(
                    "rec", "a", "s1", StepStatus.FAILED, 2.0,
                    output={"token": "sk_live_PROCESS42"}, error="bad key sk_live_PROCESS42",
                )
            ],
            [ItemWrite("rec", "a", ItemStatus.FAILED, 2.0, error="sk_live_PROCESS42 refused")],
        )  # fmt: skip
    raw = b"".join(p.read_bytes() for p in db_path.parent.iterdir() if p.is_file())
    assert b"sk_live_PROCESS42" not in raw
    with sqlite3.connect(db_path) as conn:
        output, error = conn.execute("SELECT output, error FROM steps").fetchone()
        (item_error,) = conn.execute("SELECT error FROM items").fetchone()
    assert redact.MASK in output and redact.MASK in error and redact.MASK in item_error


async def test_errors_come_back_as_the_same_one_line_state_errors(db_path: Path) -> None:
    async with SqliteStateStore(db_path, writer="process") as store:
        await store.wait_writer()
        await store.start_run("run-1", "rec", "h", 1.0)
        with pytest.raises(StateError, match="a run with id 'run-1' is already in the state"):
            await store.start_run("run-1", "rec", "h", 1.0)
        with pytest.raises(StateError, match="cannot journal steps: an item was never admitted"):
            await store.journal("run-1", [StepWrite("rec", "nope", "s", StepStatus.OK, 1.0)], [])
        await store.kv_set("ns", "k", "still writes")  # one failed batch stops nothing
        assert await store.kv_get("ns", "k") == "still writes"


async def test_auto_starts_the_process_when_a_run_admits_many_new_items(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWKIT_STATE_WRITER", raising=False)
    monkeypatch.setattr(sqlite_module, "PROCESS_AT_ADMISSION", 5)
    async with SqliteStateStore(db_path) as store:
        await store.start_run("run-1", "rec", "h", 1.0)
        few = [(f"a{n}", {"n": n}) for n in range(4)]
        await store.admit_new_items("rec", few, None, 1.0)
        await store.wait_writer()
        assert store.writer_in_use == "thread"  # four new items: a short run
        again = [*few, ("b0", {}), ("b1", {})]  # two new, four known: still too few
        assert len(await store.admit_new_items("rec", again, None, 1.0)) == 2
        await store.wait_writer()
        assert store.writer_in_use == "thread"
        many = [(f"c{n}", {"n": n}) for n in range(5)]
        await store.admit_new_items("rec", many, "c4", 1.0)
        await store.wait_writer()
        assert store.writer_in_use == "process"
        await store.journal("run-1", [StepWrite("rec", "c4", "s", StepStatus.OK, 2.0)], [])
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone() == (11,)
        assert conn.execute("SELECT status FROM steps").fetchall() == [("ok",)]


async def test_forced_thread_never_starts_the_process(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "PROCESS_AT_ADMISSION", 2)
    async with SqliteStateStore(db_path, writer="thread") as store:
        await store.start_run("run-1", "rec", "h", 1.0)
        await store.admit_new_items("rec", [(f"k{n}", {}) for n in range(3)], None, 1.0)
        await store.wait_writer()
        assert store.writer_in_use == "thread"


async def test_auto_hands_over_in_order_after_enough_step_changes(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWKIT_STATE_WRITER", raising=False)
    monkeypatch.setattr(sqlite_module, "PROCESS_AFTER", 10)
    keys = [f"i{n}" for n in range(40)]
    async with SqliteStateStore(db_path) as store:
        assert store.writer_kind == "auto"
        await _admit(store, keys)
        assert store.writer_in_use == "thread"
        # Intents then outcomes for every item, not awaited one by one: the hand-over
        # starts in the middle, and an outcome committed before its intent would leave
        # the step STARTED.
        calls = []
        for key in keys:
            calls.append(
                store.journal("run-1", [StepWrite("rec", key, "s", StepStatus.STARTED, 2.0)], [])
            )
            calls.append(
                store.journal(
                    "run-1", [StepWrite("rec", key, "s", StepStatus.OK, 3.0, attempts=1)], []
                )
            )
        await asyncio.gather(*calls)
        await store.wait_writer()
        assert store.writer_in_use == "process"
        for key in keys:  # and the process keeps the order too
            await store.journal("run-1", [StepWrite("rec", key, "t", StepStatus.STARTED, 4.0)], [])
        await asyncio.gather(
            *(
                store.journal("run-1", [StepWrite("rec", k, "t", StepStatus.OK, 5.0)], [])
                for k in keys
            )
        )
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM steps GROUP BY status").fetchall()
    assert rows == [("ok", 80)]


async def test_a_store_closed_before_the_hand_over_leaves_no_process(db_path: Path) -> None:
    store = SqliteStateStore(db_path, writer="process")
    await store.open()
    spare = store._spare
    assert spare is not None and spare._proc is not None
    pid = spare._proc.pid
    await store.kv_set("ns", "k", "v")  # served by the thread writer meanwhile
    await store.close()
    assert not _alive(pid)
    async with SqliteStateStore(db_path, writer="thread") as again:
        assert await again.kv_get("ns", "k") == "v"


async def test_a_killed_writer_process_fails_its_callers_instead_of_hanging(
    db_path: Path,
) -> None:
    async with SqliteStateStore(db_path, writer="process") as store:
        await store.wait_writer()
        (pid,) = _children(store)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(StateError, match="writer process stopped unexpectedly"):
            for _ in range(100):  # the first writes may race the kill; later ones cannot
                await asyncio.wait_for(store.kv_set("ns", "k", "v"), timeout=10)
        with pytest.raises(StateError, match="writer process stopped"):
            await store.kv_set("ns", "k", "v")
        assert await store.kv_get("ns", "missing") is None  # reads still work


PARENT = """
import asyncio, os, signal, sys
from flowkit.state.sqlite import SqliteStateStore

async def main():
    store = SqliteStateStore(sys.argv[1], writer="process")
    await store.open()
    await store.wait_writer()
    await store.kv_set("ns", "k", "v")
    print(store._writer._proc.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_the_writer_process_exits_when_its_parent_is_killed(
    db_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    parent = spawn(PARENT, str(db_path))
    out, _err = parent.communicate(timeout=60)
    assert parent.returncode == -signal.SIGKILL
    child = int(out.split()[0])
    deadline = time.monotonic() + 20  # it exits on end-of-file at once; this only bounds a bug
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(child)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT value FROM kv").fetchall() == [("v",)]
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_writer_kinds(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWKIT_STATE_WRITER", raising=False)
    assert SqliteStateStore(db_path).writer_kind == "auto"
    assert SqliteStateStore(db_path, clock=_Clock()).writer_kind == "thread"
    monkeypatch.setenv("FLOWKIT_STATE_WRITER", "process")
    assert SqliteStateStore(db_path).writer_kind == "process"
    assert SqliteStateStore(db_path, writer="thread").writer_kind == "thread"
    with pytest.raises(StateError, match="writer must be one of auto, process, thread"):
        SqliteStateStore(db_path, writer="fork")


class _Clock:
    def time(self) -> float:
        return 1.0

    def monotonic(self) -> float:
        return 1.0

    def sleep(self, seconds: float) -> None:
        return None


def test_the_writer_process_does_not_import_asyncio() -> None:
    """The child starts while a run goes on, on the core the run's other work needs: what it
    imports is its start-up cost. asyncio (and with it ssl, logging and concurrent.futures'
    friends) cost it about 50 ms, a third of its start, for nothing it uses."""
    from flowkit.state.sql import process

    root = str(Path(process.__file__).resolve().parents[3])
    probe = (
        process._BOOT.replace("; child_main()", "")  # the child's own imports, not its loop
        + "; from flowkit.state.sql.connect import connect"
        + "; from flowkit.state.sql.errors import SystemClock, retry_busy, translate"
        + "; from flowkit.state.sql.writer import Batcher"
        + "; print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, root],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = set(done.stdout.split())
    assert "flowkit.state.sql.writer" in modules
    assert sorted(m for m in modules if m.split(".")[0] in {"asyncio", "ssl", "pydantic"}) == []


async def test_the_event_loop_reads_the_writer_process_answers(db_path: Path) -> None:
    # White-box: the loop that started the child watches its pipe (no reader thread).
    async with SqliteStateStore(db_path, writer="process") as store:
        await store.wait_writer()
        writer = store._writer
        assert writer._loop is asyncio.get_running_loop()  # type: ignore[union-attr]
        assert writer._reader is None  # type: ignore[union-attr]
        await store.kv_set("ns", "k", "v")
        assert await store.kv_get("ns", "k") == "v"


async def test_stop_called_on_the_loop_itself_reads_the_last_answers(db_path: Path) -> None:
    # `stop()` is blocking; called from the event loop's own thread it cannot wait for the
    # loop to read the answers, so it takes the pipe back and reads them itself.
    store = SqliteStateStore(db_path, writer="process")
    await store.open()
    try:
        await store.wait_writer()
        writes = [asyncio.ensure_future(store.kv_set("ns", f"k{n}", "v")) for n in range(50)]
        await asyncio.sleep(0)  # every write submitted, answers not read yet
        store._writer.stop()  # type: ignore[union-attr]
        await asyncio.wait_for(asyncio.gather(*writes), timeout=10)
    finally:
        await store.close()
    async with SqliteStateStore(db_path, writer="thread") as again:
        assert [await again.kv_get("ns", f"k{n}") for n in range(50)] == ["v"] * 50


def test_a_writer_process_started_without_a_loop_answers_through_a_thread(
    db_path: Path,
) -> None:
    import functools

    from flowkit.state.sql import ops
    from flowkit.state.sql.process import ProcessWriter
    from flowkit.state.sql.writer import Op

    async def create() -> None:
        async with SqliteStateStore(db_path, writer="thread"):
            pass  # creates and migrates the file

    asyncio.run(create())
    settings = {"path": str(db_path), "synchronous": "FULL", "busy_timeout": 5.0}
    writer = ProcessWriter("test", {**settings, "busy_retry": 5.0})
    writer.start()  # no event loop: a thread reads the answers
    try:
        assert writer._reader is not None
        writer.ready.result(timeout=30)

        async def write() -> None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            writer.submit(Op(functools.partial(ops.w_kv_set, ("ns", "k", "v", 1.0)), future, loop))
            await asyncio.wait_for(future, timeout=10)

        asyncio.run(write())
    finally:
        writer.stop()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT value FROM kv WHERE key = 'k'").fetchone() == ("v",)
