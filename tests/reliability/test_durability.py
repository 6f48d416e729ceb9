"""Store durability: the database `flowkit run` opens is in WAL mode with synchronous=FULL.

https://www.sqlite.org/pragma.html#pragma_synchronous: WAL with synchronous=NORMAL may lose the
last commits on power loss; FULL syncs the WAL on every commit. `journal_mode=WAL` is stored in
the database file (header bytes 18 and 19 are 2, https://www.sqlite.org/fileformat2.html), so it
can be read back from the file after the run. `synchronous` is a setting of each connection and
is not stored, so a fresh connection would only report its own default: it is read from the
store object that `flowkit run` itself opened.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flowkit import cli
from flowkit.state import sqlite as sqlite_backend

from .conftest import Flowkit, Shop, charge_recipe


def test_flowkit_run_keeps_its_store_in_wal_mode_with_full_sync(
    shop: Shop, flowkit: Flowkit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = shop.world("durability", orders=2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(charge_recipe(world), encoding="utf-8")

    # 1. a real `flowkit run` process, then the file itself
    state = tmp_path / "state.db"
    result = flowkit.run(["run", str(recipe), "--state", str(state)])
    assert result.code == 0, result.stderr
    header = state.read_bytes()[:100]
    assert header[:16] == b"SQLite format 3\0"
    assert (header[18], header[19]) == (2, 2)  # write/read format versions 2 = WAL
    conn = sqlite3.connect(state)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()

    # 2. the store object `flowkit run` opens: record its pragmas just before it closes
    seen: list[dict[str, Any]] = []

    class Recording(sqlite_backend.SqliteStateStore):
        async def close(self) -> None:
            if self._writer is not None:
                seen.append(await self.pragmas())
            await super().close()

    monkeypatch.setattr(sqlite_backend, "SqliteStateStore", Recording)
    monkeypatch.setenv("RUN_TAG", "in-process")
    other = tmp_path / "other.db"
    with pytest.raises(SystemExit) as done:
        cli.main(["run", str(recipe), "--state", str(other), "--quiet"])
    assert done.value.code == 0
    assert len(seen) == 1
    assert seen[0]["journal_mode"] == "wal"
    assert seen[0]["synchronous"] == 2  # FULL
    assert seen[0]["busy_timeout"] >= 5000
    assert len(world.charges_per_order()) == 2
    assert set(world.charges_per_order().values()) == {1}
