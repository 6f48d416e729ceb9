"""Versioned schema of the SQL state store, applied in order inside one write transaction.

The schema version lives in the table `schema_version` (one row per applied migration), which a
PostgreSQL backend can keep as is; SQLite also mirrors it in `PRAGMA user_version` so that
`sqlite3 state.db 'PRAGMA user_version'` shows it, and marks the file with
`PRAGMA application_id` so that a SQLite file of another program is recognised as such.

Rules for a new migration: append a `Migration` with the next version; never edit a released
one; keep the DDL standard SQL (TEXT, INTEGER, REAL, PRIMARY KEY, UNIQUE, REFERENCES … ON DELETE
CASCADE, CREATE INDEX) so that the PostgreSQL backend can follow the same layout. SQLite-only
details: `AUTOINCREMENT` (PostgreSQL: an identity column) and `WITHOUT ROWID` on `steps` (the
hottest table: one B-tree instead of a table plus its primary-key index; PostgreSQL: drop it).

References: https://www.sqlite.org/pragma.html#pragma_user_version and
https://www.sqlite.org/pragma.html#pragma_application_id (read through the docs corpus).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from flowkit.errors import StateError

# "FLKT" in ASCII: marks a SQLite file as a flowkit state store (PRAGMA application_id).
APPLICATION_ID = 0x464C4B54


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, cursors, items, steps, attempts, kv",
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                recipe TEXT NOT NULL,
                recipe_hash TEXT NOT NULL,
                started_at REAL NOT NULL,
                finished_at REAL,
                status TEXT NOT NULL,
                summary TEXT NOT NULL
            )""",
            "CREATE INDEX runs_by_recipe ON runs (recipe, started_at)",
            "CREATE INDEX runs_by_start ON runs (started_at)",
            """CREATE TABLE cursors (
                recipe TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at REAL NOT NULL
            )""",
            # seq: admission order (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).
            """CREATE TABLE items (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                recipe TEXT NOT NULL,
                item_key TEXT NOT NULL,
                status TEXT NOT NULL,
                data TEXT,
                wake_at REAL,
                error TEXT,
                failures INTEGER NOT NULL DEFAULT 0,
                admitted_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                UNIQUE (recipe, item_key)
            )""",
            "CREATE INDEX items_by_status ON items (recipe, status, seq)",
            """CREATE TABLE steps (
                recipe TEXT NOT NULL,
                item_key TEXT NOT NULL,
                step_key TEXT NOT NULL,
                status TEXT NOT NULL,
                output TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                error TEXT,
                idempotency_key TEXT,
                fingerprint TEXT,
                updated_at REAL NOT NULL,
                PRIMARY KEY (recipe, item_key, step_key),
                FOREIGN KEY (recipe, item_key) REFERENCES items (recipe, item_key)
                    ON DELETE CASCADE
            ) WITHOUT ROWID""",
            # id: append order (PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY).
            """CREATE TABLE attempts (
                id INTEGER PRIMARY KEY,
                run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                recipe TEXT NOT NULL,
                item_key TEXT NOT NULL,
                step_key TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                error TEXT,
                error_kind TEXT,
                at REAL NOT NULL
            )""",
            "CREATE INDEX attempts_by_run ON attempts (run_id, id)",
            """CREATE TABLE kv (
                namespace TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (namespace, key)
            )""",
        ),
    ),
    Migration(
        2,
        "steps.run_id: the run that last wrote a step record",
        # Intents (`started`) get no attempt row any more: the step row says which run
        # left one in flight, and the next run writes the crashed run's `started` rows.
        ("ALTER TABLE steps ADD COLUMN run_id TEXT",),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {str(r[0]) for r in rows}


def current_version(conn: sqlite3.Connection, path: str) -> int:
    """The schema version of an open database: 0 for an empty file.

    Raises StateError when the file holds tables of some other program.
    """
    tables = _tables(conn)
    if "schema_version" not in tables:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if tables or app_id not in (0, APPLICATION_ID):
            raise StateError(
                f"{path} is a SQLite database of another program, not a flowkit state store; "
                "pass another `--state` path"
            )
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def check_not_newer(version: int, path: str) -> None:
    if version > LATEST_VERSION:
        raise StateError(
            f"the state database {path} was written by a newer flowkit (schema version "
            f"{version}, this flowkit knows up to {LATEST_VERSION}); upgrade flowkit"
        )


def migrate(conn: sqlite3.Connection, path: str, now: float) -> int:
    """Bring the schema up to LATEST_VERSION; return the version found before.

    `conn` must be in autocommit mode (isolation_level=None). The check is done first without
    a write lock, so that opening an up-to-date store (every `flowkit runs list`) never
    competes with a running writer; the migration itself runs in one BEGIN IMMEDIATE
    transaction and re-reads the version inside it, so two processes opening a new file at
    once apply it exactly once.
    """
    found = current_version(conn, path)
    check_not_newer(found, path)
    if found == LATEST_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = current_version(conn, path)
        check_not_newer(found, path)
        if found == 0:
            conn.execute(_VERSION_TABLE)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for step in MIGRATIONS:
            if step.version <= found:
                continue
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (step.version, step.description, now),
            )
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
