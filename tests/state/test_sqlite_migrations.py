"""Versioned schema: applied in order, in one transaction, and a newer file is refused."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from flowkit.errors import StateError
from flowkit.state import migrations
from flowkit.state.migrations import APPLICATION_ID, LATEST_VERSION, Migration
from flowkit.state.sqlite import SqliteStateStore


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as c:
        return c.execute(sql).fetchall()


async def test_fresh_file_gets_every_migration_once(db_path: Path) -> None:
    async with SqliteStateStore(db_path):
        pass
    versions = query(db_path, "SELECT version, applied_at FROM schema_version ORDER BY version")
    assert [v for v, _ in versions] == [m.version for m in migrations.MIGRATIONS]
    assert query(db_path, "PRAGMA user_version") == [(LATEST_VERSION,)]
    assert query(db_path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    async with SqliteStateStore(db_path) as s:  # reopening applies nothing
        assert (await s.pragmas())["user_version"] == LATEST_VERSION
    assert query(db_path, "SELECT version, applied_at FROM schema_version") == versions


async def test_new_migrations_are_applied_in_order(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteStateStore(db_path) as s:
        await s.kv_set("ns", "k", "v")
    extra = (
        Migration(LATEST_VERSION + 1, "notes", ("CREATE TABLE notes (id INTEGER PRIMARY KEY)",)),
        Migration(LATEST_VERSION + 2, "notes.body", ("ALTER TABLE notes ADD COLUMN body TEXT",)),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + extra)
    monkeypatch.setattr(migrations, "LATEST_VERSION", LATEST_VERSION + 2)
    async with SqliteStateStore(db_path) as s:
        assert await s.kv_get("ns", "k") == "v"  # data kept
    assert [r[0] for r in query(db_path, "SELECT version FROM schema_version")][-2:] == [
        LATEST_VERSION + 1,
        LATEST_VERSION + 2,
    ]
    assert [r[1] for r in query(db_path, "PRAGMA table_info(notes)")] == ["id", "body"]
    assert query(db_path, "PRAGMA user_version") == [(LATEST_VERSION + 2,)]


async def test_a_failing_migration_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteStateStore(db_path):
        pass
    extra = (
        Migration(LATEST_VERSION + 1, "good", ("CREATE TABLE good (id INTEGER)",)),
        Migration(LATEST_VERSION + 2, "bad", ("CREATE TABLE good (id INTEGER)",)),  # exists
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS + extra)
    monkeypatch.setattr(migrations, "LATEST_VERSION", LATEST_VERSION + 2)
    with pytest.raises(StateError, match=f"state database {db_path}: table good already exists"):
        await SqliteStateStore(db_path).open()
    assert query(db_path, "SELECT MAX(version) FROM schema_version") == [(LATEST_VERSION,)]
    assert query(db_path, "SELECT name FROM sqlite_master WHERE name = 'good'") == []
    assert query(db_path, "PRAGMA user_version") == [(LATEST_VERSION,)]


async def test_a_file_from_a_newer_flowkit_is_refused(db_path: Path) -> None:
    async with SqliteStateStore(db_path):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as c:
        c.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future', 0)", (LATEST_VERSION + 7,)
        )
        c.commit()
    with pytest.raises(StateError) as err:
        await SqliteStateStore(db_path).open()
    assert str(err.value) == (
        f"the state database {db_path} was written by a newer flowkit (schema version "
        f"{LATEST_VERSION + 7}, this flowkit knows up to {LATEST_VERSION}); upgrade flowkit"
    )


OPENER = """
import asyncio, sys
from flowkit.state.sqlite import SqliteStateStore
async def main():
    async with SqliteStateStore(sys.argv[1]) as s:  # then compete as writers
        await asyncio.gather(*(s.kv_set("opener", f"{sys.argv[2]}.{i}", "x") for i in range(100)))
        for i in range(50):
            await s.kv_set("opener", f"{sys.argv[2]}.seq.{i}", "y")
asyncio.run(main())
"""


def test_processes_creating_one_file_at_once_migrate_it_once_and_share_it(
    db_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    children = [spawn(OPENER, str(db_path), str(i)) for i in range(4)]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert "locked" not in err
    assert query(db_path, "SELECT COUNT(*) FROM schema_version") == [(len(migrations.MIGRATIONS),)]
    assert query(db_path, "SELECT COUNT(*) FROM kv") == [(4 * 150,)]
