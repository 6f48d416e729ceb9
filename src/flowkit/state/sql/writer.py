"""The group-commit writer: one thread, one write connection, one transaction per batch.

Async callers enqueue an `Op` with an asyncio future; the thread takes everything queued
(up to MAX_BATCH), runs it in ONE `BEGIN IMMEDIATE` transaction, commits, and only then
resolves the futures, with one `call_soon_threadsafe` per event loop per batch. While it waits
on the commit's fsync, new operations queue up and form the next batch, so the fsync cost is
shared by all concurrent writers. If an operation fails (a constraint: a bug in the caller),
the batch is rolled back and replayed one operation per transaction, so only the faulty call
gets the error. File-level failures (disk full, read-only, BUSY past the budget) fail the
whole batch; nothing is acknowledged that was not committed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowkit.errors import StateError
from flowkit.state.sql.errors import is_file_error
from flowkit.state.sql.ops import PUT_ATTEMPT, PUT_STEP, w_put_step

if TYPE_CHECKING:  # the writer process imports this module and needs no event loop
    import asyncio

MAX_BATCH = 1000

WriteFn = Callable[[sqlite3.Connection], Any]
Rows = tuple[tuple[Any, ...], tuple[Any, ...] | None]  # a step row, its attempt row if any


class Op:
    """One queued write: `fn(conn)`, or a put_step's (step row, attempt row) in `rows`.

    `future` and `loop` say whom to tell (the thread writer); the writer process leaves them
    None and uses `tag`, the number its parent gave the operation.
    """

    __slots__ = ("fn", "future", "loop", "rows", "tag")

    def __init__(
        self,
        fn: WriteFn | None,
        future: asyncio.Future[Any] | None,
        loop: asyncio.AbstractEventLoop | None,
        rows: Rows | None = None,
        tag: int = 0,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.rows = rows
        self.tag = tag

    def run(self, conn: sqlite3.Connection) -> Any:
        if self.rows is not None:
            return w_put_step(self.rows[0], self.rows[1], conn)
        assert self.fn is not None
        return self.fn(conn)


Outcomes = list[tuple[Op, Any, BaseException | None]]


def run_ops(conn: sqlite3.Connection, batch: list[Op]) -> list[Any]:
    """Run a batch in order; consecutive put_steps become one executemany pair."""
    results: list[Any] = []
    i, n = 0, len(batch)
    while i < n:
        j = i
        while j < n and batch[j].rows is not None:
            j += 1
        if j - i > 1:
            rows = [op.rows for op in batch[i:j] if op.rows is not None]
            conn.executemany(PUT_STEP, [r[0] for r in rows])
            conn.executemany(PUT_ATTEMPT, [r[1] for r in rows if r[1] is not None])
            results.extend([None] * (j - i))
            i = j
        else:
            results.append(batch[i].run(conn))
            i += 1
    return results


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, exc in outcomes:
        if fut.done():  # the awaiting task was cancelled; the write happened anyway
            continue
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)


class Batcher:
    """Runs batches of operations on the write connection, one transaction per batch, and
    hands every operation's result or error to `deliver` once its transaction committed.

    Shared by the writer thread and the writer process (`flowkit.state.sql.process`).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        retry: Callable[[Callable[[], list[Any]]], list[Any]],
        translate: Callable[[BaseException], BaseException],
        deliver: Callable[[Outcomes], None],
    ) -> None:
        self._connect = connect
        self._retry = retry
        self._translate = translate
        self.deliver = deliver
        self.conn: sqlite3.Connection | None = None
        self.commits = 0  # transactions committed (for benchmarks and diagnostics)
        self.ops = 0  # operations acknowledged

    def open(self) -> None:
        self.conn = self._connect()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.commits:  # a store that only read (a CLI listing) has nothing to analyse
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")
        conn.close()

    def _transaction(self, batch: list[Op]) -> list[Any]:
        conn = self.conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = run_ops(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return results

    def execute(self, batch: list[Op]) -> None:
        """Run `batch` in one transaction (replayed one by one if an operation fails)."""
        try:
            results = self._retry(lambda: self._transaction(batch))
        except Exception as exc:
            if len(batch) > 1 and not is_file_error(exc):
                for op in batch:  # find the faulty operation; the others still commit
                    self.execute([op])
                return
            error = self._translate(exc)
            if isinstance(error, StateError) and len(batch) > 1:
                # One exception object per caller: tasks raising a shared one would
                # interleave their tracebacks on it.
                self.deliver([(op, None, StateError(error.message)) for op in batch])
            else:
                self.deliver([(op, None, error) for op in batch])
            return
        self.ops += len(batch)
        self.deliver([(op, res, None) for op, res in zip(batch, results, strict=True)])


def deliver_to_loops(outcomes: Outcomes) -> None:
    """Resolve the operations' asyncio futures: one `call_soon_threadsafe` per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for op, result, exc in outcomes:
        assert op.loop is not None
        by_loop.setdefault(op.loop, []).append((op.future, result, exc))
    for loop, items in by_loop.items():
        # RuntimeError: that event loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


class Writer(threading.Thread):
    """Owns the write connection; `ready` resolves once it is open (or failed to open)."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        retry: Callable[[Callable[[], list[Any]]], list[Any]],
        translate: Callable[[BaseException], BaseException],
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._batcher = Batcher(connect, retry, translate, deliver_to_loops)
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._submit_lock = threading.Lock()
        self._stopped = False
        self.failure: StateError | None = None  # why the thread died, if it did
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()

    @property
    def commits(self) -> int:
        return self._batcher.commits

    def submit(self, op: Op) -> None:
        with self._submit_lock:
            if self._stopped:
                raise self.failure or StateError("the state store is closed")
            self._queue.put(op)

    def stop(self) -> None:
        """Run everything already queued, close the connection and end the thread."""
        with self._submit_lock:
            if not self._stopped:
                self._stopped = True
                self._queue.put(None)
        if self.is_alive():
            self.join()

    def run(self) -> None:
        try:
            self._batcher.open()
        except BaseException as exc:
            with self._submit_lock:
                self._stopped = True
            self.ready.set_exception(exc)
            return
        self.ready.set_result(None)
        try:
            self._loop()
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            failure = StateError(f"the state store writer stopped: {exc!r}")
            with self._submit_lock:
                self._stopped = True
                self.failure = failure
            leftovers: list[Op] = []
            while True:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is not None:
                    leftovers.append(op)
            deliver_to_loops([(op, None, failure) for op in leftovers])
            raise
        finally:
            self._batcher.close()

    def _loop(self) -> None:
        stopping = False
        while not (stopping and self._queue.empty()):
            first = self._queue.get()
            batch: list[Op] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                else:
                    batch.append(nxt)
            if batch:
                try:
                    self._batcher.execute(batch)
                except BaseException as exc:
                    failure = StateError(f"the state store writer stopped: {exc!r}")
                    # Futures already settled are skipped by _settle.
                    deliver_to_loops([(op, None, failure) for op in batch])
                    raise
