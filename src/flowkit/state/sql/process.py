"""The state store's writer in a child process: same batches, same transactions, own GIL.

Why: in one process the writer thread and the event loop share the GIL. While a run keeps the
loop busy, the writer gets the GIL back only at switch intervals, so each group commit takes
several milliseconds longer, every item waiting on it waits too, and the loop sits idle for
about as long as the writer works (`docs/performance.md` has the measurements). In a child
process SQLite's work runs on the other core while the loop goes on.

The protocol, on the child's stdin and stdout: frames of a 4-byte big-endian length and a
pickle. The parent sends the settings, then `("op", tag, fn, rows)` per operation (`fn` is a
module-level function of `flowkit.state.sql.ops` or a `functools.partial` of one: both pickle
by reference) and finally `("stop",)`. The child answers `("ready", error)`, then after every
batch `("acks", commits, [(tag, result, error), ...])` for the operations it committed (or
failed), and `("stopped", commits)`. Operations are applied in the order they were sent.

Lifetime: the child ignores SIGINT, SIGTERM and SIGHUP (a Ctrl-C reaches the whole process
group; the parent decides when to stop). Before each batch it checks that its parent is
still alive (`getppid`), and when its stdin reaches end-of-file without a stop the parent is
gone too (even after kill -9): either way it exits at once, committing nothing more, as the
writer thread would have died with its process. The transaction it may be in when the parent
dies completes or not, atomically; nothing it did not acknowledge was promised to anyone.

Both sides are flowkit's own code; pickle is used between them only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.errors import StateError
from flowkit.state.sql.writer import _settle

if TYPE_CHECKING:
    import asyncio

    from flowkit.state.sql.writer import Op, Outcomes

_HEADER = struct.Struct(">I")
PIPE_SIZE = 1 << 20  # bytes; Linux caps unprivileged pipes at /proc/sys/fs/pipe-max-size (1 MiB)
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from flowkit.state.sql.process import child_main; child_main()"
)


def _frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Frames:
    """Reads frames from a file descriptor; `batch()` returns every frame that has arrived
    (at least one, blocking until then) or None at end-of-file. `parse()` returns the
    complete frames already in `buffer` (for a reader that does its own `os.read`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def parse(self) -> list[Any]:
        out: list[Any] = []
        buf = self.buffer
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if len(buf) - pos - 4 < size:
                break
            out.append(pickle.loads(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out

    def batch(self) -> list[Any] | None:
        while True:
            out = self.parse()
            if out:
                return out
            chunk = os.read(self.fd, PIPE_SIZE)
            if not chunk:
                return None
            self.buffer += chunk

    def __iter__(self) -> Iterator[Any]:
        while (frames := self.batch()) is not None:
            yield from frames


# errors cross the pipe as data ------------------------------------------------------------


def _pack_error(exc: BaseException) -> tuple[str, str, str | None]:
    from flowkit import errors

    name = type(exc).__name__
    if isinstance(exc, errors.FlowkitError) and getattr(errors, name, None) is type(exc):
        return (name, exc.message, exc.hint)
    return ("", f"{name}: {exc}", None)


def _unpack_error(packed: tuple[str, str, str | None]) -> BaseException:
    from flowkit import errors

    name, message, hint = packed
    cls = getattr(errors, name, None) if name else None
    if isinstance(cls, type) and issubclass(cls, errors.FlowkitError):
        return cls(message, hint=hint)
    return StateError(f"the state store writer process failed: {message}")


# the parent side --------------------------------------------------------------------------


class ProcessWriter:
    """Drop-in for the writer thread (`flowkit.state.sql.writer.Writer`): `start`, `ready`,
    `submit`, `stop`, `commits`, `failure`, with the transactions run by a child process."""

    def __init__(self, name: str, settings: dict[str, Any], *, held: bool = False) -> None:
        self.name = name
        # While held, frames wait here instead of in the pipe (see `release`).
        self._held: list[bytes] | None = [] if held else None
        self._settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child = -1
        self._lock = threading.Lock()  # guards _pending, _next_tag, _stopped
        self._write_lock = threading.Lock()  # one frame at a time into the pipe
        self._pending: dict[int, tuple[asyncio.Future[Any], asyncio.AbstractEventLoop]] = {}
        self._next_tag = 0
        self._stopped = False
        # The answers are read by the event loop that started the child (`loop.add_reader`)
        # or, without one, by a thread of their own (`_reader`).
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frames: _Frames | None = None
        self._read_done = threading.Event()  # the last answer was read (or the child is gone)
        self._fatal: StateError | None = None
        self.failure: StateError | None = None  # why the child stopped, if it did
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.commits = 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the child. With `loop`, that event loop reads the child's answers itself
        (`add_reader`) and settles the futures of its operations at once; else (or where the
        loop cannot watch a pipe) a thread reads them and hands them over.

        Measured with `benchmarks/engine.py` at concurrency 64: a thread that must win the
        GIL from the busy loop for every answer cost the loop's thread about 2,000
        preemptions per run and the machine 6-8 us of CPU per step-item; the loop reading
        the pipe itself was faster in 10 of 14 alternating pairs (-6 % in sum).
        `docs/performance.md`, sixth round."""
        import flowkit

        root = str(Path(flowkit.__file__).resolve().parent.parent)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, root],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # errors come back as frames, never as tracebacks
                close_fds=True,
                bufsize=0,
            )
        except OSError as exc:
            self.ready.set_exception(
                StateError(f"cannot start the state store writer process: {exc.strerror}")
            )
            return
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        self._to_child = proc.stdin.fileno()
        with contextlib.suppress(OSError, AttributeError):  # a bigger pipe blocks less often
            import fcntl

            fcntl.fcntl(self._to_child, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        _write_all(self._to_child, _frame(self._settings))
        fd = proc.stdout.fileno()
        self._frames = _Frames(fd)
        if loop is not None:
            try:
                os.set_blocking(fd, False)
                loop.add_reader(fd, self._readable)
            except (NotImplementedError, OSError, RuntimeError):  # e.g. a proactor loop
                os.set_blocking(fd, True)
            else:
                self._loop = loop
                return
        self._reader = threading.Thread(target=self._read_acks, name=self.name, daemon=True)
        self._reader.start()

    def submit(self, op: Op) -> None:
        assert op.future is not None and op.loop is not None
        with self._write_lock:  # frames reach the pipe in submission order
            with self._lock:  # never held while writing: the answers' reader takes it
                if self._stopped:
                    raise self.failure or StateError("the state store is closed")
                tag = self._next_tag
                self._next_tag += 1
                self._pending[tag] = (op.future, op.loop)
            try:
                frame = _frame(("op", tag, op.fn, op.rows))
                if self._held is not None:
                    self._held.append(frame)
                else:
                    _write_all(self._to_child, frame)
            except BaseException as exc:
                with self._lock:
                    self._pending.pop(tag, None)
                if isinstance(exc, OSError):  # the child is gone
                    raise self.failure or StateError(
                        "the state store writer process stopped unexpectedly"
                    ) from None
                raise

    def release(self) -> None:
        """Send the operations held since `submit` started (the writer this one replaces has
        committed everything it was given), and every later one at once."""
        with self._write_lock:
            held, self._held = self._held, None
            if held:  # OSError: the child is gone; the answers' reader fails the pending ops
                with contextlib.suppress(OSError):
                    _write_all(self._to_child, b"".join(held))

    def abort(self) -> None:
        """Kill a child that was never given an operation (a store closed before handover)."""
        with self._lock:
            self._stopped = True
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        self._wait_reading()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop(self) -> None:
        """Let the child commit everything already sent, then wait for it to exit."""
        self.release()
        with self._write_lock:
            with self._lock:
                first = not self._stopped
                self._stopped = True
            if first and self._proc is not None:
                with contextlib.suppress(OSError):
                    _write_all(self._to_child, _frame(("stop",)))
        proc = self._proc
        if proc is None:
            return
        self._wait_reading()
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _wait_reading(self) -> None:
        """Return once the child's last answer was read (after `("stop",)` or its death).

        The thread reader is joined. An event loop that reads the answers and runs in
        another thread (the store closes its writer from an executor) reads them to the end
        itself. When this thread runs that loop, or no thread does any more, the rest is read
        here, with the pipe taken back from the loop."""
        if self._reader is not None:
            self._reader.join()
            return
        loop, frames = self._loop, self._frames
        if loop is None or frames is None or self._read_done.is_set():
            return
        import asyncio

        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is not loop:
            while not self._read_done.wait(0.05):
                if loop.is_closed() or not loop.is_running():
                    break
            if self._read_done.is_set():
                return
        with contextlib.suppress(Exception):  # a closed loop has nothing to remove
            loop.remove_reader(frames.fd)
        os.set_blocking(frames.fd, True)
        self._read_acks()

    def _readable(self) -> None:
        """The event loop's reader: every complete answer that has arrived, settled now."""
        frames = self._frames
        assert frames is not None
        try:
            chunk = os.read(frames.fd, PIPE_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        failure: StateError | None = None
        if chunk:
            frames.buffer += chunk
            try:
                stopped = False
                for message in frames.parse():
                    stopped = self._handle(message) or stopped
                if not stopped:
                    return
            except Exception as exc:  # a broken frame: treat like a dead child
                failure = StateError(f"the state store writer process failed: {exc!r}")
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(frames.fd)
        self._finish_reading(failure)

    def _read_acks(self) -> None:
        """Read answers until the child stops (blocking: the reader thread, or `stop`)."""
        frames = self._frames
        assert frames is not None
        failure: StateError | None = None
        try:
            for message in frames:
                if self._handle(message):
                    break
        except Exception as exc:  # a broken frame: treat like a dead child
            failure = StateError(f"the state store writer process failed: {exc!r}")
        self._finish_reading(failure)

    def _handle(self, message: Any) -> bool:
        """Act on one answer of the child; True for its last one (`stopped`)."""
        kind = message[0]
        if kind == "acks":
            self.commits = message[1]
            by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
            with self._lock:
                for tag, result, error in message[2]:
                    future, loop = self._pending.pop(tag)
                    exc = None if error is None else _unpack_error(error)
                    by_loop.setdefault(loop, []).append((future, result, exc))
            _deliver(by_loop)
        elif kind == "ready":
            if message[1] is None:
                self.ready.set_result(None)
            else:
                self.ready.set_exception(_unpack_error(message[1]))
        elif kind == "fatal":
            self._fatal = StateError(message[1])
        elif kind == "stopped":
            self.commits = message[1]
            return True
        return False

    def _finish_reading(self, failure: StateError | None) -> None:
        """No more answers will come: fail the operations still waiting for one."""
        failure = failure or self._fatal
        with self._lock:
            self._stopped = True
            if failure is None and self._pending:
                code = self._proc.poll() if self._proc is not None else None
                failure = StateError(
                    f"the state store writer process stopped unexpectedly (exit code {code})"
                )
            if failure is not None:
                self.failure = failure
            pending, self._pending = self._pending, {}
        if not self.ready.done():
            self.ready.set_exception(
                failure or StateError("the state store writer process stopped before it was ready")
            )
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for future, loop in pending.values():
            by_loop.setdefault(loop, []).append((future, None, StateError(str(failure))))
        _deliver(by_loop)
        self._read_done.set()


def _deliver(by_loop: dict[asyncio.AbstractEventLoop, list[Any]]) -> None:
    """Settle futures, grouped by their event loop: at once for the loop running in this
    thread (the one reading the answers), through `call_soon_threadsafe` for any other."""
    import asyncio  # the parent's only: the child never runs this

    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for loop, items in by_loop.items():
        if loop is here:
            _settle(items)
            continue
        # RuntimeError: that event loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


# the child side ---------------------------------------------------------------------------


def child_main() -> None:
    """Entry point of the writer process (started by `ProcessWriter.start`)."""
    parent = os.getppid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    frames = _Frames(0)
    out = 1
    first = frames.batch()
    if not first:
        return
    settings, queued = first[0], first[1:]

    from flowkit.state.sql.connect import connect
    from flowkit.state.sql.errors import SystemClock, retry_busy, translate
    from flowkit.state.sql.writer import MAX_BATCH, Batcher
    from flowkit.state.sql.writer import Op as WriteOp

    path = settings["path"]
    clock = SystemClock()
    budget = settings["busy_retry"]
    acks: list[tuple[int, Any, Any]] = []

    def deliver(outcomes: Outcomes) -> None:
        for op, result, exc in outcomes:
            acks.append((op.tag, result, None if exc is None else _pack_error(exc)))

    batcher = Batcher(
        functools.partial(
            connect,
            path,
            writer=True,
            synchronous=settings["synchronous"],
            busy_timeout=settings["busy_timeout"],
            busy_retry=budget,
            clock=clock,
            migrate=False,  # the parent migrated the file before it started this process
        ),
        lambda fn: retry_busy(fn, clock, budget),
        functools.partial(translate, path=path, waited=settings["busy_timeout"] + budget),
        deliver,
    )
    try:
        batcher.open()
    except BaseException as exc:
        _write_all(out, _frame(("ready", _pack_error(exc))))
        return
    _write_all(out, _frame(("ready", None)))
    stopping = False
    try:
        while not stopping:
            messages = queued or frames.batch()
            queued = []
            if messages is None or os.getppid() != parent:
                # The parent is gone (killed: its pipe may still hold operations it never
                # saw acknowledged). Commit none of them: like the writer thread, which dies
                # with its process, so the next run finds only what was acknowledged.
                os._exit(0)
            ops: list[WriteOp] = []
            for message in messages:
                if message[0] == "op":
                    ops.append(WriteOp(message[2], None, None, message[3], message[1]))
                elif message[0] == "stop":
                    stopping = True
            for start in range(0, len(ops), MAX_BATCH):
                batch = ops[start : start + MAX_BATCH]
                try:
                    batcher.execute(batch)
                except BaseException as exc:  # a bug: fail this batch, then stop for good
                    reason = f"the state store writer stopped: {exc!r}"
                    answered = {tag for tag, _r, _e in acks}
                    failed = ("StateError", reason, None)
                    acks.extend((op.tag, None, failed) for op in batch if op.tag not in answered)
                    _write_all(out, _frame(("acks", batcher.commits, acks)))
                    _write_all(out, _frame(("fatal", reason)))
                    return
            if acks:
                _write_all(out, _frame(("acks", batcher.commits, acks)))
                acks = []
    finally:
        batcher.close()
    _write_all(out, _frame(("stopped", batcher.commits)))
