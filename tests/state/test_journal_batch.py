"""`journal()`: many step and item changes in one transaction, read back like single writes."""

from __future__ import annotations

from pathlib import Path

from flowkit.state.base import ItemStatus, ItemWrite, StepStatus, StepWrite
from flowkit.state.sqlite import SqliteStateStore


async def test_journal_batch_writes_steps_attempts_and_items(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.start_run("r1", "rec", "h", 1.0)
        await store.admit_items("rec", [("a", {"n": 1}), ("b", {"n": 2})], '"c"', 1.0)
        await store.journal(
            "r1",
            [
                StepWrite(
                    "rec",
                    "a",
                    "s1",
                    StepStatus.STARTED,
                    2.0,
                    idempotency_key="k1",
                    fingerprint="f1",
                ),
                StepWrite("rec", "a", "s1", StepStatus.OK, 3.0, output={"id": 7}, attempts=1),
                StepWrite(
                    "rec",
                    "b",
                    "s1",
                    StepStatus.FAILED,
                    3.0,
                    error="boom",
                    error_kind="permanent",
                    attempts=2,
                ),
            ],
            [
                ItemWrite("rec", "a", ItemStatus.DONE, 4.0),
                ItemWrite("rec", "b", ItemStatus.FAILED, 4.0, error="step s1: boom"),
            ],
        )
        a = await store.get_steps("rec", "a")
        assert a["s1"].status is StepStatus.OK and a["s1"].output == {"id": 7}
        assert a["s1"].idempotency_key == "k1" and a["s1"].fingerprint == "f1"
        b_item = await store.get_item("rec", "b")
        assert b_item is not None and b_item.status is ItemStatus.FAILED and b_item.failures == 1
        attempts = await store.run_attempts("r1")
        # the intent of `a` got no attempt row: its run finished it
        assert [(x.item_key, x.outcome) for x in attempts] == [("a", "ok"), ("b", "error")]
    finally:
        await store.close()


async def test_get_steps_many_returns_every_key(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.start_run("r1", "rec", "h", 1.0)
        keys = [f"k{i}" for i in range(1200)]  # more than one chunk of 500
        await store.admit_items("rec", [(k, {}) for k in keys], None, 1.0)
        await store.journal("r1", [StepWrite("rec", "k7", "s", StepStatus.OK, 2.0, output=[1])], [])
        many = await store.get_steps_many("rec", keys)
        assert set(many) == set(keys)
        assert many["k7"]["s"].output == [1] and many["k8"] == {}
    finally:
        await store.close()
