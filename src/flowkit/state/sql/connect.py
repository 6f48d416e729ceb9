"""Open a connection to the state database with flowkit's settings (both writer kinds use it).

The write connection puts the file in WAL mode, sets `synchronous` and runs the migrations;
a read connection is `query_only`. SQLITE_BUSY while opening is retried within the budget and
any sqlite3 error becomes a one-line StateError naming the file.
"""

from __future__ import annotations

import sqlite3

from flowkit.errors import StateError
from flowkit.state import migrations
from flowkit.state.sql.errors import Clock, retry_busy, state_error


def connect(
    path: str,
    *,
    writer: bool,
    synchronous: str,
    busy_timeout: float,
    busy_retry: float,
    clock: Clock,
    migrate: bool = True,
) -> sqlite3.Connection:
    """A connection to `path`; the write one also migrates the schema unless `migrate` is
    False (the writer process: its parent migrated the file before starting it)."""

    def attempt() -> sqlite3.Connection:
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout,
            isolation_level=None,  # autocommit: we issue BEGIN IMMEDIATE / COMMIT
            check_same_thread=False,  # opened on one thread, used on its owner thread
            cached_statements=256,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if writer:
                mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                if mode.lower() != "wal":
                    raise StateError(
                        f"cannot put the state database {path} in WAL mode (it stays in "
                        f"{mode} mode); use a local file system"
                    )
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                conn.execute("PRAGMA journal_size_limit = 67108864")
                if migrate:
                    migrations.migrate(conn, path, clock.time())
            else:
                conn.execute("PRAGMA query_only = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    try:
        return retry_busy(attempt, clock, busy_retry)
    except sqlite3.Error as exc:
        raise state_error(exc, path, busy_timeout + busy_retry) from exc
