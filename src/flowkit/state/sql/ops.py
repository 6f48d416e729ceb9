"""The SQL of every state store operation, as plain functions of a sqlite3 connection.

Write functions (`w_*`) run on the writer thread inside its transaction; read functions run
on the reader thread, one autocommit statement each. JSON columns hold compact JSON text
(`separators=(",", ":")`, `default=str`), NULL for None, with secret values masked.
"""

from __future__ import annotations

import json
import json.scanner
import sqlite3
from collections.abc import Sequence
from typing import Any

from flowkit import jsontext
from flowkit.errors import StateError
from flowkit.redact import redact, redact_text
from flowkit.state.base import (
    AttemptRecord,
    ItemRecord,
    ItemStatus,
    ItemWrite,
    RunRecord,
    StepRecord,
    StepStatus,
    StepWrite,
)

# Attempt outcome recorded for each step status.
OUTCOMES: dict[StepStatus, str] = {
    StepStatus.OK: "ok",
    StepStatus.STARTED: "started",
    StepStatus.FAILED: "error",
    StepStatus.UNKNOWN: "unknown",
    StepStatus.SKIPPED: "skipped",
    StepStatus.WAITING: "waiting",
}

# put_step's hot path: status -> (stored value, attempt outcome) without enum attribute access.
# An intent (STARTED) appends no attempt row: its step row holds the run that wrote it, and
# only a run that crashed leaves one behind, which the next run records in that run's history
# (`w_record_interrupted`). That is 3 rows of 14 per item of `benchmarks/engine.py`, and about
# a fifth of the writer's SQLite time (`benchmarks/journal_sql.py`, variant no-started).
STEP_ROW_VALUES: dict[StepStatus, tuple[str, str | None]] = {
    st: (st.value, None if st is StepStatus.STARTED else OUTCOMES[st]) for st in StepStatus
}


def dumps(value: Any) -> str | None:
    """Compact JSON of `value` with secrets masked; None stays NULL."""
    if value is None:
        return None
    return jsontext.compact(redact(value))


# The standard library's C scanner, called directly: `json.loads` reaches it through
# three Python calls and a whitespace regex (2.5 against 0.7 us for an item's data).
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def loads(text: str | None) -> Any:
    """`json.loads(text)`; None stays None."""
    if text is None:
        return None
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError, TypeError):  # not JSON text: json.loads says why
        return json.loads(text)
    if end != len(text):  # trailing whitespace (allowed) or garbage (an error)
        return json.loads(text)
    return value


def text(value: str | None) -> str | None:
    return None if value is None else redact_text(value)


# rows ----------------------------------------------------------------------------------

ITEM_COLS = "recipe, item_key, status, data, wake_at, error, failures, updated_at"
STEP_COLS = (
    "recipe, item_key, step_key, status, output, attempts, error, idempotency_key, "
    "fingerprint, updated_at"
)
RUN_COLS = "id, recipe, recipe_hash, started_at, finished_at, status, summary"
ATTEMPT_COLS = "run_id, recipe, item_key, step_key, attempt, outcome, error, error_kind, at"


def item(row: Sequence[Any]) -> ItemRecord:
    return ItemRecord(
        recipe=row[0],
        key=row[1],
        status=ItemStatus(row[2]),
        data=loads(row[3]),
        wake_at=row[4],
        error=row[5],
        failures=row[6],
        updated_at=row[7],
    )


def step(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        recipe=row[0],
        item_key=row[1],
        step_key=row[2],
        status=StepStatus(row[3]),
        output=loads(row[4]),
        attempts=row[5],
        error=row[6],
        idempotency_key=row[7],
        fingerprint=row[8],
        updated_at=row[9],
    )


def run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        recipe=row[1],
        recipe_hash=row[2],
        started_at=row[3],
        finished_at=row[4],
        status=row[5],
        summary=loads(row[6]) or {},
    )


def attempt(row: Sequence[Any]) -> AttemptRecord:
    return AttemptRecord(*row)


# writes --------------------------------------------------------------------------------

PUT_STEP = (
    "INSERT INTO steps (recipe, item_key, step_key, status, output, attempts, error,"
    " idempotency_key, fingerprint, updated_at, run_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (recipe, item_key, step_key) DO UPDATE SET status = excluded.status,"
    " output = excluded.output, attempts = excluded.attempts, error = excluded.error,"
    " idempotency_key = COALESCE(excluded.idempotency_key, steps.idempotency_key),"
    " fingerprint = COALESCE(excluded.fingerprint, steps.fingerprint),"
    " updated_at = excluded.updated_at, run_id = excluded.run_id"
)
PUT_ATTEMPT = (
    "INSERT INTO attempts (run_id, recipe, item_key, step_key, attempt, outcome, error,"
    " error_kind, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def w_put_step(
    step_row: tuple[Any, ...], attempt_row: tuple[Any, ...] | None, c: sqlite3.Connection
) -> None:
    """Upsert a step row and append its attempt row (None for an intent: see STARTED)."""
    try:
        c.execute(PUT_STEP, step_row)
        if attempt_row is not None:
            c.execute(PUT_ATTEMPT, attempt_row)
    except sqlite3.IntegrityError:
        recipe, item_key, step_key = step_row[:3]
        run_id = step_row[-1]
        if c.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            what = f"run '{run_id}' was never started"
        else:
            what = f"item '{item_key}' of recipe '{recipe}' was never admitted"
        raise StateError(f"cannot journal step '{step_key}': {what}") from None


def _rows_sql(single: str, width: int, count: int) -> str:
    """`single` (an INSERT of one row) made to insert `count` rows in one statement."""
    one = "(" + ", ".join("?" * width) + ")"
    head, sep, tail = single.partition(one)
    assert sep, single
    return head + ", ".join([one] * count) + tail


CHUNK = 64  # rows per statement: 640 parameters, under SQLite's oldest limit (999)


def insert_many(c: sqlite3.Connection, single: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert `rows` in few statements rather than one per row.

    The writer thread takes the GIL back after every row SQLite steps through; while the
    event loop is busy each take can wait for a switch interval. A multi-row VALUES is
    applied in order, so an upsert of one key twice in a statement ends as two would.
    """
    if len(rows) == 1:
        c.execute(single, rows[0])
        return
    width = len(rows[0])
    full, rest = divmod(len(rows), CHUNK)
    if full:
        sql = _rows_sql(single, width, CHUNK)
        c.executemany(
            sql,
            [
                [v for row in rows[i : i + CHUNK] for v in row]
                for i in range(0, full * CHUNK, CHUNK)
            ],
        )
    if rest:
        c.execute(_rows_sql(single, width, rest), [v for row in rows[full * CHUNK :] for v in row])


def journal_rows(
    run_id: str, steps: Sequence[StepWrite], items: Sequence[ItemWrite]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The step, attempt and item rows of a journal batch (outputs as masked JSON)."""
    step_rows = []
    attempt_rows = []
    row_values = STEP_ROW_VALUES  # keyed by StepStatus, a str enum: plain text works too
    # unpacked rather than read by name: the writer process gets plain tuples (no `_make`
    # per change), and unpacking a named tuple is as fast as a plain one's
    for recipe, item, step, status, now, output, attempts, error, kind, key, fp, only in steps:
        value, outcome = row_values[status]
        err = None if error is None else text(error)
        out = None if output is None else dumps(output)
        if not only:
            step_rows.append((recipe, item, step, value, out, attempts, err, key, fp, now, run_id))
        if outcome is not None:
            attempt_rows.append((run_id, recipe, item, step, attempts, outcome, err, kind, now))
    item_rows = []
    for recipe, item, state, at, wake_at, reason in items:
        item_status = ItemStatus(state)
        failed = int(item_status is ItemStatus.FAILED)
        item_rows.append((item_status.value, wake_at, text(reason), at, failed, recipe, item))
    return step_rows, attempt_rows, item_rows


def masked_step(w: StepWrite) -> StepWrite:
    """`w` with secrets masked in its output and error (before it leaves this process)."""
    return w._replace(
        output=redact(w.output), error=None if w.error is None else redact_text(w.error)
    )


def masked_item(i: ItemWrite) -> ItemWrite:
    return i._replace(error=None if i.error is None else redact_text(i.error))


def w_journal_writes(
    run_id: str,
    steps: list[tuple[Any, ...]],
    items: list[tuple[Any, ...]],
    c: sqlite3.Connection,
) -> None:
    """`w_journal` of `journal_rows(...)`: the rows built on the writer's side (the writer
    process; its parent masked the secrets). Outputs arrive pickled: the engine stores
    connector outputs as JSON-mode dumps, so they pickle and encode alike. The changes come
    as the plain tuples of StepWrite and ItemWrite, which pickle faster; `journal_rows`
    unpacks them by position, as it does the named tuples."""
    w_journal(*journal_rows(run_id, steps, items), c)  # type: ignore[arg-type]


# An item's status change; parameters as `journal_rows` builds its item rows.
SET_ITEM = (
    "UPDATE items SET status = ?, wake_at = ?, error = ?, updated_at = ?,"
    " failures = failures + ? WHERE recipe = ? AND item_key = ?"
)


def w_journal(
    step_rows: list[tuple[Any, ...]],
    attempt_rows: list[tuple[Any, ...]],
    item_rows: list[tuple[Any, ...]],
    c: sqlite3.Connection,
) -> None:
    try:
        if step_rows:
            insert_many(c, PUT_STEP, step_rows)
        if attempt_rows:
            insert_many(c, PUT_ATTEMPT, attempt_rows)
    except sqlite3.IntegrityError:
        raise StateError(
            "cannot journal steps: an item was never admitted or the run was never started"
        ) from None
    if item_rows:
        c.executemany(SET_ITEM, item_rows)


def w_start_run(rid: str, recipe: str, rhash: str, now: float, c: sqlite3.Connection) -> None:
    try:
        c.execute(
            "INSERT INTO runs (id, recipe, recipe_hash, started_at, finished_at, status, summary)"
            " VALUES (?, ?, ?, ?, NULL, 'running', '{}')",
            (rid, recipe, rhash, now),
        )
    except sqlite3.IntegrityError:
        raise StateError(f"a run with id '{rid}' is already in the state store") from None


# The writes a run has in flight, or left in flight when it died: its step rows still
# `started`, as attempt rows ("started") that its history does not hold yet. A scan of the
# steps table (no index on run_id: one would cost the hot path what the dropped attempt row
# did); it runs for `flowkit runs show` and once per crashed run.
# (The recorded ones are read once, as a set: a correlated NOT EXISTS would rescan the run's
# attempts for every write in flight.) Parameters: the run id, twice.
IN_FLIGHT = (
    "SELECT run_id, recipe, item_key, step_key, attempts, 'started', NULL, NULL, updated_at"
    " FROM steps WHERE status = 'started' AND run_id = ?"
    " AND (recipe, item_key, step_key) NOT IN (SELECT recipe, item_key, step_key"
    " FROM attempts WHERE run_id = ? AND outcome = 'started')"
    " ORDER BY updated_at, recipe, item_key, step_key"
)


def w_record_interrupted(run_id: str, c: sqlite3.Connection) -> int:
    """Append a `started` attempt row, in `run_id`'s history, for every write that run left in
    flight (its step rows still `started`) and not recorded yet; returns how many. For a run
    that crashed; repeating it adds nothing."""
    sql = (
        "INSERT INTO attempts (run_id, recipe, item_key, step_key, attempt, outcome, error,"
        " error_kind, at) " + IN_FLIGHT
    )
    return c.execute(sql, (run_id, run_id)).rowcount


def w_finish_run(params: tuple[Any, ...], c: sqlite3.Connection) -> int:
    sql = "UPDATE runs SET status = ?, summary = ?, finished_at = ? WHERE id = ?"
    return c.execute(sql, params).rowcount


ADMIT = (
    "INSERT INTO items (recipe, item_key, data, admitted_at, updated_at, status, failures)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (recipe, item_key) DO NOTHING"
)


def w_admit(
    recipe: str, rows: list[tuple[Any, ...]], cursor: str | None, now: float, c: sqlite3.Connection
) -> int:
    return len(w_admit_new(recipe, rows, cursor, now, c))


def w_admit_new(
    recipe: str, rows: list[tuple[Any, ...]], cursor: str | None, now: float, c: sqlite3.Connection
) -> list[str]:
    """Insert the unseen items of `rows` (recipe, key, data, now, now) as PENDING, set the
    cursor, and return the new items' keys in admission order: `seq` only grows
    (AUTOINCREMENT), and the write lock is held, so the recipe's rows above the largest `seq`
    seen before the insert are exactly the ones this insert added."""
    before = c.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()[0]
    if rows:
        # multi-row statements: 60 against 95 ms for 10,000 items, with the loop waiting
        insert_many(c, ADMIT, [(*row, "pending", 0) for row in rows])
    if cursor is not None:
        c.execute(
            "INSERT INTO cursors (recipe, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (recipe) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at",
            (recipe, cursor, now),
        )
    sql = "SELECT item_key FROM items WHERE seq > ? AND recipe = ? ORDER BY seq"
    return [r[0] for r in c.execute(sql, (before, recipe))]


def w_set_item(params: tuple[Any, ...], c: sqlite3.Connection) -> int:
    return c.execute(SET_ITEM, params).rowcount


def w_retry(recipe: str, keys: Sequence[str] | None, now: float, c: sqlite3.Connection) -> int:
    targets: Sequence[str]
    if keys is None:
        sql = "SELECT item_key FROM items WHERE recipe = ? AND status = 'failed' ORDER BY seq"
        targets = [r[0] for r in c.execute(sql, (recipe,)).fetchall()]
    else:
        targets = list(dict.fromkeys(keys))
    count = 0
    for key in targets:
        cur = c.execute(
            "UPDATE items SET status = 'pending', failures = 0, error = NULL, wake_at = NULL,"
            " updated_at = ? WHERE recipe = ? AND item_key = ? AND status = 'failed'",
            (now, recipe, key),
        )
        if cur.rowcount:
            count += 1
            c.execute(
                "DELETE FROM steps WHERE recipe = ? AND item_key = ?"
                " AND status IN ('failed', 'unknown')",
                (recipe, key),
            )
    return count


def w_kv_set(params: tuple[Any, ...], c: sqlite3.Connection) -> None:
    c.execute(
        "INSERT INTO kv (namespace, key, value, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at",
        params,
    )


def w_nothing(c: sqlite3.Connection) -> None:
    """An empty transaction: queued behind other writes, its commit means they committed."""


def w_pragmas(c: sqlite3.Connection) -> dict[str, Any]:
    names = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "user_version")
    return {name: c.execute(f"PRAGMA {name}").fetchone()[0] for name in names}


# reads ---------------------------------------------------------------------------------


def fetch(c: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return c.execute(sql, params).fetchall()


def r_list_runs(recipe: str | None, limit: int, c: sqlite3.Connection) -> list[RunRecord]:
    where, params = ("WHERE recipe = ? ", [recipe]) if recipe is not None else ("", [])
    sql = f"SELECT {RUN_COLS} FROM runs {where}ORDER BY started_at DESC, id DESC LIMIT ?"
    return [run(r) for r in fetch(c, sql, [*params, limit])]


def r_list_items(
    recipe: str | None, status: ItemStatus | None, limit: int, c: sqlite3.Connection
) -> list[ItemRecord]:
    clauses: list[str] = []
    params: list[Any] = []
    if recipe is not None:
        clauses.append("recipe = ?")
        params.append(recipe)
    if status is not None:
        clauses.append("status = ?")
        params.append(ItemStatus(status).value)
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    sql = f"SELECT {ITEM_COLS} FROM items {where}ORDER BY seq LIMIT ?"
    return [item(r) for r in fetch(c, sql, [*params, limit])]


ITEMS_TO_RUN = (
    f"SELECT {ITEM_COLS} FROM items WHERE recipe = ? AND (status = 'pending'"
    " OR (status = 'waiting' AND COALESCE(wake_at, 0) <= ?)"
    " OR (status = 'failed' AND failures < ?)) ORDER BY seq"
)
