"""Overlap: one `flowkit run` per recipe and store at a time, and no stale lock after kill -9.

The lock is `flock(2)` on a file next to the state database (https://linux.die.net/man/2/flock):
it belongs to the open file description, so the kernel drops it when the holder dies. Every
process tags its requests (`X-Run-Tag`), so the server can tell who sent what.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from flowkit.errors import ExitCode

from .conftest import RECIPE_NAME, Flowkit, Shop, World, charge_recipe, integrity, store_rows


def _files(tmp_path: Path, world: World) -> tuple[Path, Path]:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(charge_recipe(world), encoding="utf-8")
    return recipe, tmp_path / "state.db"


def _all_paid_once(world: World, state: Path) -> None:
    charges = world.charges_per_order()
    assert set(charges.values()) == {1}, charges
    for effect in world.effects("charge"):
        assert world.status[effect.order] == {"status": "paid", "charge": effect.ref}
    statuses = store_rows(
        state, "SELECT status, count(*) FROM items WHERE recipe = ? GROUP BY status", (RECIPE_NAME,)
    )
    assert statuses == [("done", len(world.orders))]
    assert world.idempotency_errors == 0
    assert integrity(state) == "ok"


def _exit_times(
    procs: dict[str, subprocess.Popen[str]], started: float, until: str
) -> dict[str, float]:
    """Poll until process `until` has exited; seconds from `started` to each exit seen."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while until not in seen and time.monotonic() < deadline:
        for name, proc in procs.items():
            if name not in seen and proc.poll() is not None:
                seen[name] = time.monotonic() - started
        time.sleep(0.005)
    return seen


def test_a_second_run_exits_at_once_and_a_waiting_one_runs_after(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    world = shop.world("overlap", orders=4)
    world.latency = 0.05
    world.gate_tag = "A"  # A's requests wait at the gate: A holds the lock as long as we like
    recipe, state = _files(tmp_path, world)
    args = ["run", str(recipe), "--state", str(state), "--concurrency", "1"]

    a = flowkit.start(args, tag="A")
    # A's first request comes after it took the lock (the trigger runs inside the locked part)
    assert world.gate_reached.wait(timeout=60)
    started = time.monotonic()
    b = flowkit.start(args, tag="B")
    waiter = flowkit.start([*args, "--wait-lock", "10"], tag="W")
    # the cost of starting flowkit right now, under the same load, with no lock in play: an
    # offline dry run on another store does the same imports and loading, then no I/O
    dry = flowkit.start(
        ["run", str(recipe), "--state", str(tmp_path / "other.db"), "--dry-run", "--offline"],
        tag="D",
    )
    times = _exit_times({"B": b, "D": dry}, started, until="B")
    b_out, b_err = b.communicate(timeout=30)
    world.gate_open.set()  # A may finish now; W is waiting for the lock
    times.update(_exit_times({"D": dry}, started, until="D"))
    dry.communicate(timeout=30)
    assert dry.returncode == 0

    assert b.returncode == ExitCode.LOCKED, b_out + b_err
    assert times["B"] < times["D"] + 1.0, times  # no waiting beyond start-up
    lines = b_err.strip().splitlines()
    assert len(lines) == 1, b_err
    assert "another `flowkit run` of recipe 'charge-orders' is in progress" in lines[0]
    assert "nothing was done" in lines[0]
    assert b_out == ""
    assert world.sent_by("B") == []

    a_out, a_err = a.communicate(timeout=60)
    assert a.returncode == 0, a_out + a_err
    w_out, w_err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, w_out + w_err
    w_requests = world.sent_by("W")
    assert w_requests, "the waiting run ran"
    assert min(r.at for r in w_requests) >= max(r.at for r in world.sent_by("A"))
    assert [r.method for r in w_requests] == ["GET"]  # everything was done: it only listed
    _all_paid_once(world, state)
    # B did not even start a run: only A's and W's runs are in the history
    assert len(store_rows(state, "SELECT id FROM runs")) == 2


def test_a_killed_run_leaves_no_lock_and_the_next_run_finishes_its_work(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    world = shop.world("killed-holder", orders=6)
    world.latency = 0.15
    recipe, state = _files(tmp_path, world)
    args = ["run", str(recipe), "--state", str(state), "--concurrency", "1"]

    a = flowkit.start(args, tag="A")
    deadline = time.monotonic() + 30
    while len(world.writes("A")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a.poll() is None
    a.kill()
    a.communicate(timeout=30)
    assert a.returncode == -9
    sent_by_a = len(world.writes("A"))
    assert 3 <= sent_by_a < 2 * len(world.orders)
    assert integrity(state) == "ok"

    c = flowkit.run(args, tag="C")  # no --wait-lock: a stale lock would make this exit 5
    assert c.code == 0, c.stdout + c.stderr
    assert world.sent_by("C")
    _all_paid_once(world, state)
