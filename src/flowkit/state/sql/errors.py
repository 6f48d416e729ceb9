"""sqlite3 errors → one-line StateErrors naming the file; BUSY retry with bounded backoff.

Reference: https://www.sqlite.org/rescode.html (primary result codes),
https://docs.python.org/3/library/sqlite3.html (`sqlite_errorcode`, Python 3.11+).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from flowkit.errors import StateError

T = TypeVar("T")


class Clock(Protocol):
    """Time source for lock polling, BUSY backoff and bookkeeping times (tests inject one)."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def error_code(exc: sqlite3.Error) -> int:
    """The primary result code (extended codes carry it in the low byte)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

# Errors about the file or the disk rather than about one operation.
_FILE_ERRORS = _BUSY | {
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
    sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_PERM,
    sqlite3.SQLITE_AUTH,
}


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and error_code(exc) in _BUSY


def is_file_error(exc: BaseException) -> bool:
    return (
        isinstance(exc, sqlite3.Error)
        and not isinstance(exc, sqlite3.IntegrityError)
        and error_code(exc) in _FILE_ERRORS
    )


def retry_busy(fn: Callable[[], T], clock: Clock, budget: float) -> T:
    """Call fn; on SQLITE_BUSY (after SQLite's own busy_timeout) retry with capped
    exponential backoff until `budget` more seconds have passed, then re-raise."""
    deadline: float | None = None
    delay = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            now = clock.monotonic()
            if deadline is None:
                deadline = now + budget
            if now >= deadline:
                raise
            clock.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.5)


def translate(exc: BaseException, path: str, waited: float) -> BaseException:
    """A sqlite3 error as the StateError for `path` (`state_error`); anything else as it is."""
    if isinstance(exc, sqlite3.Error):
        return state_error(exc, path, waited)
    return exc


def state_error(exc: sqlite3.Error, path: str, waited: float) -> StateError:
    """A one-line StateError for a sqlite3 error on the database file `path`."""
    code = error_code(exc)
    detail = str(exc).strip() or type(exc).__name__
    if code in _BUSY:
        msg = (
            f"the state database {path} stayed locked by another process for over "
            f"{waited:.3g} s; try again later"
        )
    elif code == sqlite3.SQLITE_FULL:
        msg = f"cannot write the state database {path}: the disk is full ({detail})"
    elif code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
        msg = (
            f"cannot write the state database {path}: it is read-only ({detail}); the file "
            "and its directory must be writable"
        )
    elif code == sqlite3.SQLITE_CANTOPEN:
        msg = (
            f"cannot open the state database {path} ({detail}); the file and its directory "
            "must exist and be writable"
        )
    elif code == sqlite3.SQLITE_NOTADB:
        msg = (
            f"{path} is not a flowkit state store (not a SQLite database); pass another "
            "`--state` path"
        )
    elif code == sqlite3.SQLITE_CORRUPT:
        msg = f"the state database {path} is corrupt ({detail}); move it aside and restore a backup"
    elif code == sqlite3.SQLITE_IOERR:
        msg = f"I/O error on the state database {path} ({detail})"
    else:
        msg = f"state database {path}: {detail}"
    return StateError(msg)
