"""Recipe locks: exclusive across processes, released by the kernel when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowkit.errors import ExitCode, LockHeld
from flowkit.state.sqlite import SqliteStateStore, lock_path

HOLDER = """
import sys, time
from flowkit.state.sqlite import SqliteStateStore
lock = SqliteStateStore(sys.argv[1]).lock(sys.argv[2])
print("locked", flush=True)
time.sleep(120)
"""


def test_lock_path_is_sanitized_bounded_and_unique(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    p = lock_path(db, "invoice-on-payment")
    assert p.parent == tmp_path
    assert p.name.startswith("state.db.invoice-on-payment.") and p.name.endswith(".lock")
    evil = lock_path(db, "../../etc/passwd")
    assert evil.parent == tmp_path and "/" not in evil.name[len("state.db.") :]
    assert lock_path(db, "a/b") != lock_path(db, "a_b")  # the hash tells them apart
    assert len(lock_path(db, "x" * 1000).name) < 80
    assert lock_path(db, "...").name.startswith("state.db.recipe.")


def test_lock_is_exclusive_in_process(db_path: Path) -> None:
    store = SqliteStateStore(db_path)
    first = store.lock("invoice")
    try:
        with pytest.raises(LockHeld) as err:
            store.lock("invoice")
        assert str(err.value) == (
            "another `flowkit run` of recipe 'invoice' is in progress (lock file "
            f"{lock_path(store.path, 'invoice')}, held by pid {os.getpid()}); nothing was done"
        )
        assert err.value.exit_code == ExitCode.LOCKED
        with store.lock("other-recipe"):  # other recipes are independent
            pass
    finally:
        first.release()
    first.release()  # idempotent
    assert not first.held
    with store.lock("invoice") as again:
        assert again.held
    assert not again.held


def test_wait_polls_with_the_clock_then_gives_up(db_path: Path, clock: Any) -> None:
    store = SqliteStateStore(db_path, clock=clock)
    with store.lock("rec"), pytest.raises(LockHeld):
        store.lock("rec", wait=1.0)
    assert sum(clock.sleeps) == pytest.approx(1.0)
    assert max(clock.sleeps) <= 0.05 + 1e-9


def test_wait_gets_the_lock_when_it_is_released(db_path: Path, clock: Any) -> None:
    store = SqliteStateStore(db_path, clock=clock)
    held = store.lock("rec")
    clock.on_sleep = lambda n: held.release() if n == 3 else None
    with store.lock("rec", wait=10.0) as lock:
        assert lock.held
    assert len(clock.sleeps) == 3


def test_lock_across_processes_and_release_on_sigkill(
    db_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    child = spawn(HOLDER, str(db_path), "invoice")
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    store = SqliteStateStore(db_path)
    with pytest.raises(LockHeld, match=f"held by pid {child.pid}"):
        store.lock("invoice")
    with store.lock("refunds"):
        pass
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    with store.lock("invoice") as lock:  # no stale lock after kill -9
        assert lock.held


def test_a_second_process_cannot_take_a_held_lock(
    db_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    store = SqliteStateStore(db_path)
    with store.lock("invoice"):
        child = spawn(HOLDER, str(db_path), "invoice")
        _, err = child.communicate(timeout=30)
        assert child.returncode == 1
        assert "LockHeld: another `flowkit run` of recipe 'invoice' is in progress" in err
        assert f"held by pid {os.getpid()}" in err
