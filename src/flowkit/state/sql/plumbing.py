"""The plumbing of the SQLite state store: its settings, its file, the reader thread, and
the writer (a thread that hands over to a writer process in long runs).

`flowkit.state.sqlite.SqliteStateStore` builds the StateStore operations on it; its module
docstring says how the two keep the promises of `flowkit.state.base`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from flowkit.errors import StateError
from flowkit.state.sql import ops
from flowkit.state.sql.connect import connect
from flowkit.state.sql.errors import Clock, SystemClock, retry_busy, translate
from flowkit.state.sql.lock import make_private_dirs
from flowkit.state.sql.process import ProcessWriter
from flowkit.state.sql.writer import Op, WriteFn, Writer

T = TypeVar("T")

BUSY_TIMEOUT = 5.0  # seconds SQLite's own busy handler waits for a lock
BUSY_RETRY = 30.0  # further seconds of Python-level retries before giving up


WRITER_KINDS = ("auto", "process", "thread")


def _writer_kind(requested: str, clock: Clock | None) -> str:
    """The writer kind for `requested` (`auto`: `$FLOWKIT_STATE_WRITER` if set, else a
    thread that hands over to a writer process after `flowkit.state.sqlite.PROCESS_AFTER`
    journaled step changes).

    `process` starts the writer process at open (the thread serves until it is ready);
    `thread` never starts one. An injected clock keeps `auto` on the thread: tests drive
    BUSY backoff with it, and it cannot cross into another process. Outside POSIX systems
    the writer is always the thread.
    """
    if requested != "auto":
        return requested
    forced = os.environ.get("FLOWKIT_STATE_WRITER", "").strip().lower()
    if forced in WRITER_KINDS:
        return forced
    if (clock is not None and not isinstance(clock, SystemClock)) or os.name != "posix":
        return "thread"
    return "auto"


class StorePlumbing:
    """Settings, file, reader thread and writer of a SQLite state store (see
    `flowkit.state.sqlite.SqliteStateStore`, which adds the operations)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        clock: Clock | None = None,
        busy_timeout: float = BUSY_TIMEOUT,
        busy_retry: float = BUSY_RETRY,
        writer: str = "auto",
    ) -> None:
        raw = os.fspath(path)
        if not raw or raw == ":memory:" or raw.startswith("file:"):
            raise StateError(
                f"the state store needs a file path, not {raw!r} (in tests: a file in tmp_path)"
            )
        self.path = Path(raw).expanduser().absolute()
        sync = synchronous.upper()
        if sync not in ("FULL", "NORMAL"):
            raise StateError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.synchronous = sync
        self.clock: Clock = clock or SystemClock()
        self.busy_timeout = busy_timeout
        self.busy_retry = busy_retry
        if writer not in WRITER_KINDS:
            raise StateError(f"writer must be one of {', '.join(WRITER_KINDS)}, not {writer!r}")
        self.writer_kind = _writer_kind(writer, clock)
        self._writer: Writer | ProcessWriter | None = None
        self._spare: ProcessWriter | None = None  # booting, to take over from the thread
        self._handover: asyncio.Future[None] | None = None
        self._journaled = 0  # step changes journaled (for the `auto` writer's handover)
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        self._rconn: sqlite3.Connection | None = None
        self._opened = False
        self._closed = False

    @property
    def writer_in_use(self) -> str:
        """`process` once a writer process took over, else `thread` (diagnostics, tests)."""
        return "process" if isinstance(self._writer, ProcessWriter) else "thread"

    @property
    def commits(self) -> int:
        """Write transactions committed since open (group commit makes this << writes)."""
        return self._writer.commits if self._writer else 0

    # plumbing ----------------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T]) -> T:
        return retry_busy(fn, self.clock, self.busy_retry)

    def _translate(self, exc: BaseException) -> BaseException:
        return translate(exc, str(self.path), self.busy_timeout + self.busy_retry)

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        return connect(
            str(self.path),
            writer=writer,
            synchronous=self.synchronous,
            busy_timeout=self.busy_timeout,
            busy_retry=self.busy_retry,
            clock=self.clock,
        )

    def _prepare_file(self) -> None:
        try:
            make_private_dirs(self.path.parent)
            # Created 0600 before SQLite sees it: state holds customer data and tokens, and
            # SQLite gives the -wal and -shm files the database file's permissions.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.close(fd)
        except IsADirectoryError:
            raise StateError(f"the state database {self.path} is a directory") from None
        except OSError as exc:
            if self.path.exists():
                raise StateError(
                    f"cannot open the state database {self.path} for writing: {exc.strerror}; "
                    "the file and its directory must be writable"
                ) from exc
            raise StateError(
                f"cannot create the state database {self.path}: {exc.strerror}; the directory "
                "must be writable"
            ) from exc

    def _not_open(self) -> StateError:
        state = "closed" if self._closed else "not open"
        return StateError(f"the state store {self.path} is {state}")

    def _submit(self, op: Op) -> None:
        """Queue `op` on the writer in use; the one-line StateError when the store is not open
        (or the writer stopped)."""
        writer = self._writer
        if writer is None:
            raise self._not_open()
        try:
            writer.submit(op)
        except StateError as exc:
            raise (self._not_open() if self._closed else exc) from None

    async def _write(self, fn: WriteFn | None, rows: Any = None) -> Any:
        """Run `fn` (or write a put_step's `rows`) in the writer's next transaction; its result
        once committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._submit(Op(fn, fut, loop, rows))
        return await fut

    def _read_call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._rconn
        if conn is None:
            raise self._not_open()
        try:
            return self._retry(lambda: fn(conn))
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        reader = self._reader
        if reader is None:
            raise self._not_open()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(reader, self._read_call, fn)

    # lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the database and start the writer and reader threads."""
        if self._closed:
            raise self._not_open()
        if self._opened:
            return
        self._prepare_file()
        loop = asyncio.get_running_loop()
        # The writer thread serves at once (it also migrates the file); with the process
        # writer kind, a child process boots meanwhile and takes over when ready.
        writer = Writer(
            f"flowkit-state-writer:{self.path.name}",
            functools.partial(self._connect, writer=True),
            self._retry,
            self._translate,
        )
        writer.start()
        try:
            await asyncio.wrap_future(writer.ready)
        except BaseException:
            await loop.run_in_executor(None, writer.stop)
            raise
        if self.writer_kind == "process":
            self._start_process_writer(loop)
        reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flowkit-state-read")
        try:
            self._rconn = await loop.run_in_executor(
                reader, functools.partial(self._connect, writer=False)
            )
        except BaseException:
            reader.shutdown()
            await loop.run_in_executor(None, writer.stop)
            raise
        self._writer = writer
        self._reader = reader
        self._opened = True

    def _start_process_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        settings = {
            "path": str(self.path),
            "synchronous": self.synchronous,
            "busy_timeout": self.busy_timeout,
            "busy_retry": self.busy_retry,
        }
        child = ProcessWriter(f"flowkit-state-writer-process:{self.path.name}", settings, held=True)
        self._spare = child
        child.start(loop)

        def booted(_ready: concurrent.futures.Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: close() cleans up
                loop.call_soon_threadsafe(self._hand_over, child)

        child.ready.add_done_callback(booted)

    async def wait_writer(self) -> None:
        """Wait until a writer process being started has taken over, or failed to (then the
        thread writer stays). For tests and benchmarks; runs never need to wait."""
        spare = self._spare
        if spare is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(spare.ready)
            while self._spare is spare and spare.ready.exception() is None:
                await asyncio.sleep(0)  # the hand-over is scheduled on this loop
        if self._handover is not None:
            await self._handover

    def _hand_over(self, child: ProcessWriter) -> None:
        """Make the booted child the writer: operations submitted from now on are held in
        this process until the thread writer has committed everything it was given (a
        barrier operation queued behind them), then sent to the child in order."""
        if self._spare is not child:
            return
        old = self._writer
        if self._closed or old is None or child.ready.exception() is not None:
            return  # close() aborts it; a child that failed to start leaves the thread writer
        self._spare = None
        loop = asyncio.get_running_loop()
        barrier: asyncio.Future[Any] = loop.create_future()
        self._writer = child
        try:
            old.submit(Op(ops.w_nothing, barrier, loop))
        except StateError:
            barrier.set_result(None)

        async def switch() -> None:
            with contextlib.suppress(Exception):  # a failed barrier failed its ops already
                await barrier
            child.release()
            await loop.run_in_executor(None, old.stop)

        self._handover = asyncio.ensure_future(switch())

    async def close(self) -> None:
        """Commit what is queued, stop the threads and close the connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        spare, self._spare = self._spare, None
        if spare is not None:  # never took over: nothing was sent to it
            await loop.run_in_executor(None, spare.abort)
        if self._handover is not None:
            await self._handover
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        if writer is not None:
            await loop.run_in_executor(None, writer.stop)
        if reader is not None:
            rconn, self._rconn = self._rconn, None
            if rconn is not None:
                await loop.run_in_executor(reader, rconn.close)
            await loop.run_in_executor(None, reader.shutdown)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
