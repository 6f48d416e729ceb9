"""Every StateStore method of the SQLite backend, on a real file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from flowkit import redact
from flowkit.errors import StateError
from flowkit.state.base import ItemStatus, StateStore, StepStatus
from flowkit.state.sqlite import SqliteStateStore, default_state_path, open_store
from flowkit.state.sync import SyncStateStore


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


async def test_is_a_state_store(store: SqliteStateStore) -> None:
    checked: StateStore = store  # mypy checks the protocol; this checks it at run time
    for name in [n for n in dir(StateStore) if not n.startswith("_")]:
        assert callable(getattr(checked, name)), name


async def test_pragmas_wal_full_busy_timeout_foreign_keys(store: SqliteStateStore) -> None:
    p = await store.pragmas()
    assert p["journal_mode"] == "wal"
    assert p["synchronous"] == 2  # FULL
    assert p["busy_timeout"] >= 5000
    assert p["foreign_keys"] == 1


async def test_synchronous_normal_is_opt_in(db_path: Path) -> None:
    async with SqliteStateStore(db_path, synchronous="normal") as s:
        assert (await s.pragmas())["synchronous"] == 1


def test_bad_synchronous_and_memory_paths_are_refused(db_path: Path) -> None:
    with pytest.raises(StateError, match="synchronous must be FULL or NORMAL, not 'OFF'"):
        SqliteStateStore(db_path, synchronous="OFF")
    with pytest.raises(StateError, match="needs a file path"):
        SqliteStateStore(":memory:")


async def test_open_creates_private_dirs_and_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    async with SqliteStateStore(path):
        pass
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_runs(store: SqliteStateStore) -> None:
    await store.start_run("r1", "invoice", "h1", 10.0)
    await store.start_run("r2", "invoice", "h2", 20.0)
    await store.start_run("r3", "other", "h3", 30.0)
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.finished_at, run.summary, run.recipe_hash) == (
        "running",
        None,
        {},
        "h1",
    )

    await store.finish_run("r1", "partial", {"ok": 3, "failed": 1}, 15.0)
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.finished_at, run.summary) == ("partial", 15.0, {"ok": 3, "failed": 1})

    assert [r.id for r in await store.list_runs()] == ["r3", "r2", "r1"]  # newest first
    assert [r.id for r in await store.list_runs("invoice")] == ["r2", "r1"]
    assert [r.id for r in await store.list_runs(limit=1)] == ["r3"]
    assert await store.get_run("nope") is None

    with pytest.raises(StateError, match="a run with id 'r1' is already in the state store"):
        await store.start_run("r1", "invoice", "h1", 40.0)
    with pytest.raises(StateError, match="no run with id 'ghost'"):
        await store.finish_run("ghost", "ok", {}, 1.0)


async def test_admit_dedups_keeps_order_and_moves_cursor(store: SqliteStateStore) -> None:
    assert await store.get_cursor("rec") is None
    n = await store.admit_items(
        "rec", [("b", {"n": 1}), ("a", {"n": 2}), ("b", {"n": 3})], "c1", 1.0
    )
    assert n == 2  # the repeated key inside one batch counts once
    assert await store.get_cursor("rec") == "c1"

    # The overlap re-read of a trigger: known keys are left alone, whatever their status.
    await store.set_item("rec", "a", ItemStatus.DONE, 2.0)
    n = await store.admit_items("rec", [("a", {"n": 9}), ("c", None)], "c2", 3.0)
    assert n == 1
    assert await store.get_cursor("rec") == "c2"
    a = await store.get_item("rec", "a")
    assert a is not None and a.status is ItemStatus.DONE and a.data == {"n": 2}

    # cursor=None keeps the cursor; an empty batch can still move it.
    assert await store.admit_items("rec", [("d", 1)], None, 4.0) == 1
    assert await store.get_cursor("rec") == "c2"
    assert await store.admit_items("rec", [], "c3", 5.0) == 0
    assert await store.get_cursor("rec") == "c3"

    assert [i.key for i in await store.list_items("rec")] == ["b", "a", "c", "d"]
    assert await store.get_cursor("other") is None


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_admit_new_items_returns_what_a_read_back_would(db_path: Path, writer: str) -> None:
    import datetime as dt

    if writer == "process" and os.name != "posix":
        pytest.skip("the writer process is POSIX-only")
    redact.register("sk_live_SECRET123")
    async with SqliteStateStore(db_path, writer=writer) as store:
        await store.wait_writer()
        await store.admit_items("rec", [("old", {"n": 0})], None, 1.0)
        await store.admit_items("other", [("x", 1)], None, 1.0)
        data = {
            "when": dt.datetime(2026, 1, 2, 3, 4, 5),  # not JSON: stored as text
            "pair": (1, 2),  # a tuple is stored as a list
            "auth": "Bearer sk_live_SECRET123",  # stored masked
            7: "int key",  # JSON keys are text
        }
        new = await store.admit_new_items(
            "rec", [("b", data), ("old", {"n": 9}), ("a", 1), ("b", {"n": 3})], "c1", 2.0
        )
        assert [r.key for r in new] == ["b", "a"]  # only new keys, first of repeated ones
        assert new[0].data == {
            "when": "2026-01-02 03:04:05", "pair": [1, 2], "auth": "Bearer ***", "7": "int key"
        }  # fmt: skip
        assert await store.get_cursor("rec") == "c1"
        read = {r.key: r for r in await store.items_to_run("rec", 2.0, 3)}
        assert new == [read["b"], read["a"]]
        assert await store.admit_new_items("rec", [("a", 2)], None, 3.0) == []


async def test_admit_is_atomic_with_the_cursor(store: SqliteStateStore, db_path: Path) -> None:
    await store.admit_items("rec", [("a", 1)], "c1", 1.0)
    # Item keys must be text; a value json cannot encode even with default=str does not
    # exist, so force a failure inside the transaction with a trigger instead.
    with raw(db_path) as c:
        c.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON items WHEN NEW.item_key = 'bad'"
            " BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
    with pytest.raises(StateError, match="boom"):
        await store.admit_items("rec", [("x", 1), ("bad", 2)], "c2", 2.0)
    assert await store.get_cursor("rec") == "c1"  # the cursor did not pass unstored items
    assert await store.get_item("rec", "x") is None


async def test_items_to_run_and_set_item(store: SqliteStateStore) -> None:
    keys = ["p", "w_due", "w_later", "f1", "f3", "done"]
    await store.admit_items("rec", [(k, {"k": k}) for k in keys], None, 1.0)
    await store.admit_items("zzz", [("p", 1)], None, 1.0)
    await store.set_item("rec", "w_due", ItemStatus.WAITING, 2.0, wake_at=100.0)
    await store.set_item("rec", "w_later", ItemStatus.WAITING, 2.0, wake_at=101.0)
    await store.set_item("rec", "f1", ItemStatus.FAILED, 2.0, error="HTTP 500")
    for _ in range(3):
        await store.set_item("rec", "f3", ItemStatus.FAILED, 2.0, error="HTTP 400")
    await store.set_item("rec", "done", ItemStatus.DONE, 2.0)

    due = await store.items_to_run("rec", now=100.0, max_failures=3)
    assert [i.key for i in due] == ["p", "w_due", "f1"]  # admission order
    assert [i.key for i in await store.items_to_run("rec", 101.0, 4)] == keys[:5]

    f3 = await store.get_item("rec", "f3")
    assert f3 is not None
    assert (f3.status, f3.failures, f3.error, f3.updated_at) == (
        ItemStatus.FAILED,
        3,
        "HTTP 400",
        2.0,
    )
    w = await store.get_item("rec", "w_due")
    assert w is not None and w.wake_at == 100.0 and w.data == {"k": "w_due"}

    # Leaving FAILED does not reset the count; errors and wake times are replaced.
    await store.set_item("rec", "f3", ItemStatus.DONE, 3.0)
    f3 = await store.get_item("rec", "f3")
    assert f3 is not None and (f3.status, f3.failures, f3.error) == (ItemStatus.DONE, 3, None)

    assert [i.key for i in await store.list_items(status=ItemStatus.WAITING)] == [
        "w_due",
        "w_later",
    ]
    assert len(await store.list_items()) == 7
    assert len(await store.list_items(limit=2)) == 2
    assert await store.get_item("rec", "ghost") is None
    with pytest.raises(StateError, match="no item 'ghost' of recipe 'rec'"):
        await store.set_item("rec", "ghost", ItemStatus.DONE, 1.0)


async def test_steps_upsert_and_attempts(store: SqliteStateStore) -> None:
    await store.start_run("r1", "rec", "h", 0.0)
    await store.admit_items("rec", [("ch_1", {"amount": 100})], "c", 0.0)
    await store.put_step(
        "r1", "rec", "ch_1", "invoice", StepStatus.STARTED, 1.0,
        attempts=1, idempotency_key="k-invoice", fingerprint="fp1",
    )  # fmt: skip
    await store.put_step(
        "r1", "rec", "ch_1", "invoice", StepStatus.FAILED, 2.0,
        attempts=1, error="HTTP 503 from POST /invoice", error_kind="transient",
    )  # fmt: skip
    await store.put_step(
        "r1", "rec", "ch_1", "invoice", StepStatus.OK, 3.0, output={"id": "in_1", "n": [1, 2]},
        attempts=2,
    )  # fmt: skip
    await store.put_step("r1", "rec", "ch_1", "email[0]", StepStatus.SKIPPED, 4.0)

    steps = await store.get_steps("rec", "ch_1")
    assert set(steps) == {"invoice", "email[0]"}
    inv = steps["invoice"]
    assert (inv.status, inv.output, inv.attempts, inv.error) == (
        StepStatus.OK, {"id": "in_1", "n": [1, 2]}, 2, None,
    )  # fmt: skip
    # The key and fingerprint recorded with STARTED survive later writes that omit them.
    assert (inv.idempotency_key, inv.fingerprint, inv.updated_at) == ("k-invoice", "fp1", 3.0)
    assert await store.get_steps("rec", "other") == {}

    attempts = await store.run_attempts("r1")
    assert [(a.step_key, a.attempt, a.outcome, a.error_kind) for a in attempts] == [
        ("invoice", 1, "error", "transient"),  # the intent before it has no attempt row
        ("invoice", 2, "ok", None),
        ("email[0]", 0, "skipped", None),
    ]
    assert attempts[0].error == "HTTP 503 from POST /invoice"
    assert attempts[0].at == 2.0
    assert await store.run_attempts("r2") == []


async def test_writes_left_in_flight_join_their_runs_history_when_recorded(
    store: SqliteStateStore,
) -> None:
    await store.start_run("r1", "rec", "h", 1.0)
    await store.admit_items("rec", [("a", {}), ("b", {})], None, 1.0)
    for key, at in (("a", 2.0), ("b", 2.5)):
        await store.put_step("r1", "rec", key, "pay", StepStatus.STARTED, at, attempts=1)
    await store.put_step("r1", "rec", "a", "pay", StepStatus.OK, 3.0, attempts=1)
    # b's write is in flight: the history shows it from its step row, as a started attempt
    expected = [("a", 1, "ok", 3.0), ("b", 1, "started", 2.5)]
    attempts = await store.run_attempts("r1")
    assert [(a.item_key, a.attempt, a.outcome, a.at) for a in attempts] == expected
    # r1 dies here; the next run records the write in r1's history, once
    assert await store.record_interrupted("r2") == 0
    assert await store.record_interrupted("r1") == 1
    assert await store.record_interrupted("r1") == 0
    attempts = await store.run_attempts("r1")
    assert [(a.item_key, a.attempt, a.outcome, a.at) for a in attempts] == expected


async def test_put_step_for_unknown_item_or_run_names_it(store: SqliteStateStore) -> None:
    await store.start_run("r1", "rec", "h", 0.0)
    await store.admit_items("rec", [("a", 1)], None, 0.0)
    with pytest.raises(
        StateError, match="cannot journal step 's': item 'zz' of recipe 'rec' was never admitted"
    ):
        await store.put_step("r1", "rec", "zz", "s", StepStatus.OK, 1.0)
    with pytest.raises(StateError, match="run 'r9' was never started"):
        await store.put_step("r9", "rec", "a", "s", StepStatus.OK, 1.0)


async def test_retry_items(store: SqliteStateStore, clock: Any) -> None:
    await store.start_run("r1", "rec", "h", 0.0)
    await store.admit_items("rec", [(k, None) for k in "abcd"], None, 0.0)
    for key in "abc":
        await store.put_step("r1", "rec", key, "charge", StepStatus.OK, 1.0, output={"id": key})
        await store.put_step("r1", "rec", key, "invoice", StepStatus.FAILED, 1.0, error="x")
        await store.put_step("r1", "rec", key, "email", StepStatus.UNKNOWN, 1.0, error="reset")
        await store.set_item("rec", key, ItemStatus.FAILED, 1.0, error="x")
        await store.set_item("rec", key, ItemStatus.FAILED, 1.0, error="x")
    await store.put_step("r1", "rec", "d", "invoice", StepStatus.FAILED, 1.0)  # d is pending

    assert await store.retry_items("rec", ["a", "d", "ghost"]) == 1
    a = await store.get_item("rec", "a")
    assert a is not None
    assert (a.status, a.failures, a.error, a.updated_at) == (ItemStatus.PENDING, 0, None, clock.now)
    assert set(await store.get_steps("rec", "a")) == {"charge"}  # OK steps are kept
    assert set(await store.get_steps("rec", "d")) == {"invoice"}  # not FAILED: untouched
    assert set(await store.get_steps("rec", "b")) == {"charge", "invoice", "email"}

    assert await store.retry_items("rec", None) == 2  # b and c
    assert [i.key for i in await store.list_items("rec", ItemStatus.FAILED)] == []
    assert await store.retry_items("rec", None) == 0
    assert await store.retry_items("other", None) == 0


async def test_kv(store: SqliteStateStore) -> None:
    assert await store.kv_get("quickbooks", "refresh_token") is None
    await store.kv_set("quickbooks", "refresh_token", "rt-1")
    await store.kv_set("quickbooks", "refresh_token", "rt-2")
    await store.kv_set("shopify", "refresh_token", "other")
    assert await store.kv_get("quickbooks", "refresh_token") == "rt-2"
    assert await store.kv_get("shopify", "refresh_token") == "other"


async def test_json_columns_are_compact_json_text(store: SqliteStateStore, db_path: Path) -> None:
    import datetime as dt

    await store.start_run("r1", "rec", "h", 0.0)
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    await store.admit_items("rec", [("a", {"when": when, "n": 1.5, "s": "é"})], None, 0.0)
    await store.put_step("r1", "rec", "a", "s", StepStatus.OK, 1.0, output=[1, None])
    with raw(db_path) as c:
        (data,) = c.execute("SELECT data FROM items").fetchone()
        (output,) = c.execute("SELECT output FROM steps").fetchone()
    assert data == '{"when":"2026-01-02 03:04:05","n":1.5,"s":"\\u00e9"}'
    assert output == "[1,null]"
    item = await store.get_item("rec", "a")
    assert item is not None and item.data == {"when": "2026-01-02 03:04:05", "n": 1.5, "s": "é"}


async def test_secrets_are_masked_but_kv_is_verbatim(store: SqliteStateStore) -> None:
    redact.register("sk_live_SECRET123")
    await store.start_run("r1", "rec", "h", 0.0)
    await store.admit_items("rec", [("a", {"auth": "sk_live_SECRET123"})], None, 0.0)
    await store.put_step(
        "r1", "rec", "a", "s", StepStatus.FAILED, 1.0,
        output={"echo": "Bearer sk_live_SECRET123"}, error="401 for key sk_live_SECRET123",
    )  # fmt: skip
    await store.set_item("rec", "a", ItemStatus.FAILED, 1.0, error="sk_live_SECRET123 rejected")
    await store.kv_set("ns", "token", "sk_live_SECRET123")
    item = await store.get_item("rec", "a")
    step = (await store.get_steps("rec", "a"))["s"]
    assert item is not None
    assert item.data == {"auth": "***"} and item.error == "*** rejected"
    assert step.output == {"echo": "Bearer ***"} and step.error == "401 for key ***"
    assert (await store.run_attempts("r1"))[0].error == "401 for key ***"
    assert await store.kv_get("ns", "token") == "sk_live_SECRET123"


async def test_group_commit_batches_concurrent_writes(store: SqliteStateStore) -> None:
    await store.start_run("r1", "rec", "h", 0.0)
    await store.admit_items("rec", [(f"k{i}", None) for i in range(400)], None, 0.0)
    before = store.commits
    await asyncio.gather(
        *(store.put_step("r1", "rec", f"k{i}", "s", StepStatus.OK, 1.0) for i in range(400))
    )
    commits = store.commits - before
    assert 1 <= commits < 100, commits
    assert len(await store.run_attempts("r1")) == 400


async def test_a_failing_write_does_not_fail_its_batch(store: SqliteStateStore) -> None:
    await store.start_run("r1", "rec", "h", 0.0)
    await store.admit_items("rec", [(f"k{i}", None) for i in range(50)], None, 0.0)
    calls = [store.put_step("r1", "rec", f"k{i}", "s", StepStatus.OK, 1.0) for i in range(50)]
    calls.insert(25, store.put_step("r1", "rec", "missing", "s", StepStatus.OK, 1.0))
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and "item 'missing'" in str(errors[0])
    assert len(await store.run_attempts("r1")) == 50


async def test_close_flushes_queued_writes_and_is_idempotent(db_path: Path) -> None:
    s = SqliteStateStore(db_path)
    await s.open()
    await s.admit_items("rec", [(f"k{i}", None) for i in range(100)], None, 0.0)
    tasks = [
        asyncio.create_task(s.set_item("rec", f"k{i}", ItemStatus.DONE, 1.0)) for i in range(100)
    ]
    await asyncio.sleep(0)  # every task has queued its write
    await s.close()
    await s.close()
    await asyncio.gather(*tasks)
    with pytest.raises(StateError, match="is closed"):
        await s.kv_get("a", "b")
    with pytest.raises(StateError, match="is closed"):
        await s.kv_set("a", "b", "c")
    with pytest.raises(StateError, match="is closed"):
        await s.open()
    async with SqliteStateStore(db_path) as again:
        done = await again.list_items("rec", ItemStatus.DONE)
    assert len(done) == 100


async def test_use_before_open_is_a_clear_error(db_path: Path) -> None:
    s = SqliteStateStore(db_path)
    with pytest.raises(StateError, match="is not open"):
        await s.get_cursor("rec")
    await s.close()  # closing a store that was never opened is fine


async def test_reopen_keeps_everything(db_path: Path) -> None:
    async with SqliteStateStore(db_path) as s:
        await s.admit_items("rec", [("a", {"x": 1})], "c9", 1.0)
    async with SqliteStateStore(db_path) as s:
        assert await s.get_cursor("rec") == "c9"
        assert [i.key for i in await s.items_to_run("rec", 0.0, 1)] == ["a"]


def test_sync_facade(db_path: Path) -> None:
    with SyncStateStore(db_path) as s:
        s.kv_set("ns", "k", "v")
        assert s.kv_get("ns", "k") == "v"
        assert s.list_runs() == []
        assert s.get_run("x") is None
        assert s.run_attempts("x") == []
        assert s.get_cursor("rec") is None
        assert s.get_item("rec", "a") is None
        assert s.list_items() == []
        assert s.items_to_run("rec", 0.0, 3) == []
        assert s.retry_items("rec", None) == 0
        assert s.get_steps("rec", "a") == {}
        with s.lock("rec") as lock:
            assert lock.held
    with pytest.raises(StateError, match="not open"):
        s.list_runs()


def test_default_state_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWKIT_STATE", "~/x/state.db")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "x" / "state.db"
    monkeypatch.delenv("FLOWKIT_STATE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_path() == tmp_path / "xdg" / "flowkit" / "state.db"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert default_state_path() == tmp_path / ".local" / "state" / "flowkit" / "state.db"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_path() == tmp_path / ".local" / "state" / "flowkit" / "state.db"


async def test_open_store_uses_the_default_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOWKIT_STATE", str(tmp_path / "d" / "s.db"))
    async with open_store(None) as s:
        await s.kv_set("a", "b", "c")
    assert (tmp_path / "d" / "s.db").exists()
    assert open_store(str(tmp_path / "e.db")).path == tmp_path / "e.db"
    assert os.fspath(open_store(tmp_path / "e.db", synchronous="NORMAL").path).endswith("e.db")


class WriterBug(BaseException):
    """Escapes the writer's per-batch error handling, like a bug in the writer itself."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_dying_writer_fails_its_callers_instead_of_hanging(
    store: SqliteStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowkit.state.sql import writer

    def broken(conn: object, batch: object) -> object:
        raise WriterBug("boom")

    monkeypatch.setattr(writer, "run_ops", broken)
    with pytest.raises(StateError, match=r"the state store writer stopped: WriterBug\('boom'\)"):
        await asyncio.wait_for(store.kv_set("a", "b", "c"), timeout=10)
    with pytest.raises(StateError, match="writer stopped"):  # and stays stopped
        await store.put_step("r", "rec", "a", "s", StepStatus.OK, 1.0)
    assert await store.kv_get("a", "b") is None  # reads still work; close() still works
