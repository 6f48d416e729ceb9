"""The embedded SQLite backend of the state store (WAL, group commit, flock recipe locks).

Tables (created by `flowkit.state.migrations`; standard SQL so a PostgreSQL backend can keep
the same layout; JSON columns are TEXT holding compact JSON, NULL for None):

  schema_version (version PK, description, applied_at)        one row per applied migration
  runs     (id PK, recipe, recipe_hash, started_at, finished_at, status, summary JSON)
  cursors  (recipe PK, value, updated_at)
  items    (seq autoincrement PK = admission order, recipe, item_key, status, data JSON,
            wake_at, error, failures, admitted_at, updated_at; UNIQUE (recipe, item_key))
  steps    (recipe, item_key, step_key PK; status, output JSON, attempts, error,
            idempotency_key, fingerprint, updated_at, run_id; FK (recipe, item_key) -> items)
  attempts (id PK = append order, run_id FK -> runs, recipe, item_key, step_key, attempt,
            outcome, error, error_kind, at)
  kv       (namespace, key PK; value, updated_at)

How it keeps the promises of `flowkit.state.base`:

* Durability: WAL with `synchronous=FULL` (one fsync of the WAL per commit; NORMAL is an
  opt-in that may lose the last commits on power loss, never on a process crash).
* Group commit: one writer thread owns the write connection. A write method enqueues an
  operation and awaits an asyncio future; the writer drains everything queued, runs it in ONE
  `BEGIN IMMEDIATE` transaction, commits, then resolves the futures (one
  `call_soon_threadsafe` per event loop per batch). A method returns only after its commit.
  If one operation of a batch fails (a constraint), the batch is rolled back and replayed one
  operation per transaction, so only the faulty call sees the error.
* Reads use a second connection on one reader thread; each read is one autocommit statement.
* "database is locked" never surfaces: busy_timeout (5 s) on every connection, short
  IMMEDIATE transactions, and a bounded Python-level retry with backoff on SQLITE_BUSY; past
  that budget, and for disk full, read-only, corrupt or foreign files, a one-line StateError
  naming the file.
* Recipe locks: `fcntl.flock(LOCK_EX | LOCK_NB)` on `<db>.<recipe>.<hash>.lock`, released by
  the kernel when the holder dies (even on kill -9). Lock files are never deleted: deleting
  one that another process has open would let two processes lock different inodes.

The store's settings, file, threads and writer hand-over live in
`flowkit.state.sql.plumbing.StorePlumbing`; this module adds the operations.

Synchronous callers (CLI listing commands) use `flowkit.state.sync.SyncStateStore`, which
runs each call on a private event loop.

References read: https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html
(journal_mode, synchronous, busy_timeout, user_version, max_page_count),
https://sqlite.org/c3ref/busy_timeout.html, https://docs.python.org/3/library/sqlite3.html
(isolation_level=None, sqlite_errorcode), https://linux.die.net/man/2/flock.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowkit import redact
from flowkit.errors import StateError
from flowkit.state.base import (
    AttemptRecord,
    ItemRecord,
    ItemStatus,
    ItemWrite,
    RunRecord,
    StateStore,
    StepRecord,
    StepStatus,
    StepWrite,
)
from flowkit.state.sql import ops
from flowkit.state.sql.errors import Clock, SystemClock
from flowkit.state.sql.lock import FileLock, acquire, lock_path
from flowkit.state.sql.plumbing import StorePlumbing
from flowkit.state.sql.process import ProcessWriter
from flowkit.state.sql.writer import Op

__all__ = [
    "Clock",
    "FileLock",
    "SqliteStateStore",
    "SystemClock",
    "default_state_path",
    "lock_path",
    "open_store",
]

# Journaled step changes after which an `auto` store moves its writer into a process. Measured
# on the 2-core CI machine (docs/performance.md): for 10,000 items x 3 steps the process
# writer cuts the event loop's idle time from ~45 to ~10 us per step-item; for 1,000 items
# that each POST once, starting a process (~80 ms, and a core the HTTP server also needs) made
# the run 8-60 % slower. Below this many changes a run is too short to repay the process.
PROCESS_AFTER = 4_000

# New items admitted at once from which a run is known to be long before it journals anything:
# the writer process starts at the admission instead of after PROCESS_AFTER step changes (the
# thread serves while it boots). Measured with `benchmarks/engine.py` (10,000 items): 16
# alternating pairs, the early start faster in 11, 1,738 against 1,835 us in sum (-5 %): the
# thread writer's first 4,000 changes held about 60 % of the event loop's idle time. The 1,000
# items of the HTTP recipe stay on the thread (see PROCESS_AFTER).
PROCESS_AT_ADMISSION = 2_000


def default_state_path() -> Path:
    """`$FLOWKIT_STATE`, else `$XDG_STATE_HOME/flowkit/state.db`, else
    `~/.local/state/flowkit/state.db`."""
    explicit = os.environ.get("FLOWKIT_STATE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    # The XDG base directory spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "flowkit" / "state.db"
    return Path.home() / ".local" / "state" / "flowkit" / "state.db"


def open_store(path: str | os.PathLike[str] | None, **options: Any) -> SqliteStateStore:
    """A store for `path` (None: `default_state_path()`), not yet opened: use
    `async with open_store(path) as store:` or `await store.open()`."""
    return SqliteStateStore(default_state_path() if path is None else path, **options)


class SqliteStateStore(StorePlumbing):
    """The SQLite implementation of `flowkit.state.base.StateStore`.

    `synchronous="NORMAL"` trades durability on power loss (never on a process crash) for
    fewer fsyncs. `clock` drives lock polling, BUSY backoff and the times the store stamps
    itself (retry_items, kv_set); everything else is stamped with the caller's `now`.
    """

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self.path)!r})"

    def lock(self, recipe: str, wait: float = 0.0) -> FileLock:
        """Take the recipe's exclusive lock or raise LockHeld after `wait` seconds.

        Blocking (it polls with the store's clock); works without `open()`.
        """
        return acquire(self.path, recipe, wait, self.clock)

    async def pragmas(self) -> dict[str, Any]:
        """The write connection's settings: journal_mode, synchronous, busy_timeout, ..."""
        result: dict[str, Any] = await self._write(ops.w_pragmas)
        return result

    # runs ----------------------------------------------------------------------------------

    async def start_run(self, run_id: str, recipe: str, recipe_hash: str, now: float) -> None:
        await self._write(functools.partial(ops.w_start_run, run_id, recipe, recipe_hash, now))

    async def finish_run(
        self, run_id: str, status: str, summary: dict[str, Any], now: float
    ) -> None:
        params = (status, ops.dumps(summary or {}), now, run_id)
        if not await self._write(functools.partial(ops.w_finish_run, params)):
            raise StateError(f"no run with id '{run_id}' in the state store {self.path}")

    async def record_interrupted(self, run_id: str) -> int:
        n: int = await self._write(functools.partial(ops.w_record_interrupted, run_id))
        return n

    async def list_runs(self, recipe: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest first."""
        return await self._read(functools.partial(ops.r_list_runs, recipe, limit))

    async def get_run(self, run_id: str) -> RunRecord | None:
        sql = f"SELECT {ops.RUN_COLS} FROM runs WHERE id = ?"
        rows = await self._read(lambda c: ops.fetch(c, sql, (run_id,)))
        return ops.run(rows[0]) if rows else None

    async def run_attempts(self, run_id: str) -> list[AttemptRecord]:
        """In the order they were journaled, then the writes the run has (or left) in flight
        that its history does not hold yet (ops.IN_FLIGHT)."""
        sql = f"SELECT {ops.ATTEMPT_COLS} FROM attempts WHERE run_id = ? ORDER BY id"

        def query(c: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return ops.fetch(c, sql, (run_id,)) + ops.fetch(c, ops.IN_FLIGHT, (run_id, run_id))

        return [ops.attempt(r) for r in await self._read(query)]

    # trigger -------------------------------------------------------------------------------

    async def get_cursor(self, recipe: str) -> str | None:
        sql = "SELECT value FROM cursors WHERE recipe = ?"
        rows = await self._read(lambda c: ops.fetch(c, sql, (recipe,)))
        return str(rows[0][0]) if rows else None

    async def admit_items(
        self, recipe: str, items: Sequence[tuple[str, Any]], cursor: str | None, now: float
    ) -> int:
        """Insert unseen items (PENDING, in the given order) and set the cursor, in one
        transaction; returns how many were new."""
        rows = [(recipe, str(key), ops.dumps(data), now, now) for key, data in items]
        new: int = await self._write(functools.partial(ops.w_admit, recipe, rows, cursor, now))
        return new

    async def admit_new_items(
        self, recipe: str, items: Sequence[tuple[str, Any]], cursor: str | None, now: float
    ) -> list[ItemRecord]:
        """`admit_items`, returning the new items' records (admission order). Their data is
        decoded from the very JSON text stored, so it is masked and shaped like a read."""
        texts: dict[str, str | None] = {}
        for key, data in items:
            if str(key) not in texts:  # the first of repeated keys is stored, as admit_items
                texts[str(key)] = ops.dumps(data)
        rows = [(recipe, key, text, now, now) for key, text in texts.items()]
        keys: list[str] = await self._write(
            functools.partial(ops.w_admit_new, recipe, rows, cursor, now)
        )
        if len(keys) >= PROCESS_AT_ADMISSION:
            self._move_writer_to_process()
        pending = ItemStatus.PENDING
        loads = ops.loads
        return [ItemRecord(recipe, k, pending, loads(texts[k]), None, None, 0, now) for k in keys]

    # items ---------------------------------------------------------------------------------

    async def get_item(self, recipe: str, key: str) -> ItemRecord | None:
        sql = f"SELECT {ops.ITEM_COLS} FROM items WHERE recipe = ? AND item_key = ?"
        rows = await self._read(lambda c: ops.fetch(c, sql, (recipe, key)))
        return ops.item(rows[0]) if rows else None

    async def items_to_run(self, recipe: str, now: float, max_failures: int) -> list[ItemRecord]:
        """PENDING, due WAITING (a missing wake_at counts as due) and FAILED items with fewer
        than `max_failures` failures, in admission order."""
        params = (recipe, now, max_failures)
        rows = await self._read(lambda c: ops.fetch(c, ops.ITEMS_TO_RUN, params))
        return [ops.item(r) for r in rows]

    async def list_items(
        self, recipe: str | None = None, status: ItemStatus | None = None, limit: int = 1000
    ) -> list[ItemRecord]:
        """In admission order."""
        return await self._read(functools.partial(ops.r_list_items, recipe, status, limit))

    async def set_item(
        self,
        recipe: str,
        key: str,
        status: ItemStatus,
        now: float,
        *,
        wake_at: float | None = None,
        error: str | None = None,
    ) -> None:
        """Move an item to `status`; FAILED increments its failure count."""
        st = ItemStatus(status)
        failed = int(st is ItemStatus.FAILED)
        params = (st.value, wake_at, ops.text(error), now, failed, recipe, key)
        if not await self._write(functools.partial(ops.w_set_item, params)):
            raise StateError(f"no item '{key}' of recipe '{recipe}' in the state store {self.path}")

    async def retry_items(self, recipe: str, keys: Sequence[str] | None) -> int:
        """Reset FAILED items (all when `keys` is None) to PENDING with zero failures and
        delete their FAILED/UNKNOWN step records; returns how many items were reset."""
        if isinstance(keys, str):
            keys = [keys]
        now = self.clock.time()
        count: int = await self._write(functools.partial(ops.w_retry, recipe, keys, now))
        return count

    # steps ---------------------------------------------------------------------------------

    async def get_steps(self, recipe: str, item_key: str) -> dict[str, StepRecord]:
        sql = f"SELECT {ops.STEP_COLS} FROM steps WHERE recipe = ? AND item_key = ?"
        rows = await self._read(lambda c: ops.fetch(c, sql, (recipe, item_key)))
        return {r[2]: ops.step(r) for r in rows}

    async def get_steps_many(
        self, recipe: str, item_keys: Sequence[str]
    ) -> dict[str, dict[str, StepRecord]]:
        """The journals of many items in a few queries (chunks of 500 keys)."""
        keys = list(item_keys)

        def query(c: sqlite3.Connection) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = (
                    f"SELECT {ops.STEP_COLS} FROM steps WHERE recipe = ? AND item_key IN ({marks})"
                )
                rows.extend(ops.fetch(c, sql, (recipe, *chunk)))
            return rows

        out: dict[str, dict[str, StepRecord]] = {key: {} for key in keys}
        for r in await self._read(query):
            out[r[1]][r[2]] = ops.step(r)
        return out

    async def put_step(
        self,
        run_id: str,
        recipe: str,
        item_key: str,
        step_key: str,
        status: StepStatus,
        now: float,
        *,
        output: Any = None,
        attempts: int = 0,
        error: str | None = None,
        error_kind: str | None = None,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """Upsert the step and append an attempt row (none for an intent), durably.

        A None idempotency_key or fingerprint keeps the stored one (the key recorded with
        STARTED survives the OK that follows it).
        """
        # The rows `journal` would write for this one change. Queued as a put_step pair (not a
        # `fn`), so that concurrent put_steps share executemany calls (writer.run_ops).
        write = StepWrite(recipe, item_key, step_key, StepStatus(status), now, output, attempts,
                          error, error_kind, idempotency_key, fingerprint)  # fmt: skip
        (step,), attempt_rows, _items = ops.journal_rows(run_id, [write], [])
        attempt = attempt_rows[0] if attempt_rows else None  # an intent has none
        await self._write(None, (step, attempt))

    async def journal(
        self, run_id: str, steps: Sequence[StepWrite], items: Sequence[ItemWrite]
    ) -> None:
        """Many put_step and set_item changes in one transaction (one queued operation)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send_journal(run_id, steps, items, done)
        await done

    def send_journal(
        self,
        run_id: str,
        steps: Sequence[StepWrite],
        items: Sequence[ItemWrite],
        done: asyncio.Future[None],
    ) -> None:
        """Queue `journal`'s operation now; the writer settles `done` after its commit."""
        writer = self._writer
        if writer is None:
            raise self._not_open()
        if self.writer_kind == "auto":
            self._journaled += len(steps)
            if self._journaled >= PROCESS_AFTER and self._journaled - len(steps) < PROCESS_AFTER:
                self._move_writer_to_process()
        if isinstance(writer, ProcessWriter):
            # The writer process has a core to itself: it builds the rows and encodes the
            # outputs (ops.w_journal_writes). Secrets are masked here, where they are known.
            if redact.has_secrets():
                steps = [ops.masked_step(w) for w in steps]
                items = [ops.masked_item(i) for i in items]
            # plain tuples: a named tuple pickles through Python-level __getnewargs__ (3.2
            # against 1.4 us per change, conversion included)
            fn = functools.partial(
                ops.w_journal_writes, run_id, list(map(tuple, steps)), list(map(tuple, items))
            )
        else:
            fn = functools.partial(ops.w_journal, *ops.journal_rows(run_id, steps, items))
        self._submit(Op(fn, done, done.get_loop()))

    def _move_writer_to_process(self) -> None:
        """An `auto` store's run proved long: start the writer process, unless one has taken
        over, is booting or failed to start (the thread writer then stays)."""
        if self.writer_kind != "auto" or self._spare is not None or self._writer is None:
            return
        if not isinstance(self._writer, ProcessWriter):
            self._start_process_writer(asyncio.get_running_loop())

    # connector key-value -------------------------------------------------------------------

    async def kv_get(self, namespace: str, key: str) -> str | None:
        sql = "SELECT value FROM kv WHERE namespace = ? AND key = ?"
        rows = await self._read(lambda c: ops.fetch(c, sql, (namespace, key)))
        return str(rows[0][0]) if rows else None

    async def kv_set(self, namespace: str, key: str, value: str) -> None:
        """Stored verbatim (never masked: rotated tokens live here)."""
        params = (namespace, key, value, self.clock.time())
        await self._write(functools.partial(ops.w_kv_set, params))


def _conforms(store: SqliteStateStore) -> StateStore:
    return store  # mypy proves here that SqliteStateStore implements the StateStore protocol
