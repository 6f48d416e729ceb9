"""The crash test: kill `flowkit run` everywhere it can die, re-run it, check the world.

A Jepsen-style set test (https://github.com/jepsen-io/jepsen, doc/tutorial/08-set.md) on one
host. The workload is N orders with distinct keys; the recipe charges each order once through an
idempotent POST (Stripe semantics, see conftest.py) and then PUTs the order's status with the
charge id. The nemesis kills the real `flowkit run` subprocess:

  (i)   after the k-th write request, for every k from 1 to the number of writes of a clean run:
        the server applies the effect, SIGKILLs the process, and only then answers (an outcome
        the client never learns: Jepsen's indeterminate `:info`);
  (ii)  at the engine's named phases (`FLOWKIT_CRASH_AT=<phase>:<n>`, `os._exit(137)`);
  (iii) at seeded random times from the harness.

After each kill the recipe is re-run (fresh processes) until it exits 0, and the checker reads
the server's ledger of APPLIED effects, not flowkit's journal:

  duplicates  an order charged more than once;
  lost        an order with no charge, no final status, or not `done` in the store;
  unexpected  an effect for an order outside the workload;
  key drift   one (order, step) sent under more than one idempotency key, or an
              `idempotency_error` (a changed request under one key);
plus `PRAGMA integrity_check` after every kill and at the end, and the cursor.

A second lane covers writes WITHOUT idempotency: killed between the intent and the outcome,
the re-run must not resend them and must report the item failed with an unknown outcome;
`flowkit items retry` then sends it exactly once.

Reproduce the figures: `.venv/bin/pytest tests/reliability/test_crash.py -q -s`.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flowkit.sandbox.mail import MailCatcher

from .conftest import (
    RECIPE_NAME,
    Flowkit,
    Result,
    Shop,
    World,
    charge_recipe,
    integrity,
    store_rows,
)

ITEMS = 6  # two writes each: 12 write requests in a clean run, so 12 "after the k-th write" kills
CONCURRENCY = "3"  # two waves of items, with writes of several items in flight at each kill
RERUN_CAP = 4
WRITES = 2 * ITEMS
PHASE_POINTS = {  # admission happens once per run; the other phases once per write
    "before_admit": [1],
    "after_admit": [1],
    "before_send": [1, ITEMS, WRITES],
    "after_send": [1, ITEMS, WRITES],
    "after_journal": [1, ITEMS, WRITES],
}
# More random kills (e.g. nightly): RELIABILITY_RANDOM_KILLS=200 .venv/bin/pytest ...
RANDOM_KILLS = int(os.environ.get("RELIABILITY_RANDOM_KILLS", "4"))
RANDOM_SEED = int(os.environ.get("RELIABILITY_SEED", "20261"))
RANDOM_LATENCY = 0.04  # seconds per request: spreads a run over a window worth aiming at


@dataclass
class Case:
    name: str
    kill_after_write: int | None = None
    crash_at: str | None = None
    kill_delay: float | None = None  # seconds after the first request the server sees
    latency: float = 0.0


@dataclass
class Verdict:
    case: Case
    fired: bool
    runs: list[int] = field(default_factory=list)  # exit codes, the killed run first
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: int = 0
    key_drift: list[str] = field(default_factory=list)
    idempotency_errors: int = 0
    integrity: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    writes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Tally:
    """The figures the issue asks for, summed over every test of this module."""

    kill_points: int = 0
    fired: int = 0
    items: int = 0
    duplicates: int = 0
    lost: int = 0
    runs: int = 0
    resent: int = 0  # write requests repeated under their own key (replayed, or naturally safe)
    by_mode: dict[str, int] = field(default_factory=dict)

    def add(self, mode: str, verdicts: list[Verdict]) -> None:
        self.by_mode[mode] = self.by_mode.get(mode, 0) + len(verdicts)
        self.kill_points += len(verdicts)
        self.fired += sum(v.fired for v in verdicts)
        self.items += ITEMS * len(verdicts)
        self.duplicates += sum(v.duplicates for v in verdicts)
        self.lost += sum(len(v.lost) for v in verdicts)
        self.runs += sum(len(v.runs) for v in verdicts)
        self.resent += sum(v.writes - WRITES for v in verdicts)

    def line(self) -> str:
        modes = ", ".join(f"{k}={v}" for k, v in self.by_mode.items())
        return (
            f"crash test: kill points tried={self.kill_points} ({modes}), fired={self.fired}, "
            f"items={self.items} ({ITEMS} per kill point), flowkit runs={self.runs}, "
            f"writes re-sent under their key={self.resent}, "
            f"duplicates found={self.duplicates}, lost found={self.lost}"
        )


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    figures = Tally()
    yield figures
    if figures.kill_points:
        print("\n" + figures.line())


class Crasher:
    """Runs one case: the faulty first run, re-runs until exit 0, then the checker."""

    def __init__(self, shop: Shop, flowkit: Flowkit, root: Path) -> None:
        self.shop = shop
        self.flowkit = flowkit
        self.root = root

    def paths(self, world: World) -> tuple[Path, Path]:
        recipe = self.root / f"{world.name}.yaml"
        recipe.write_text(charge_recipe(world), encoding="utf-8")
        return recipe, self.root / f"{world.name}.db"

    @staticmethod
    def args(recipe: Path, state: Path) -> list[str]:
        return ["run", str(recipe), "--state", str(state), "--concurrency", CONCURRENCY]

    def run_case(self, case: Case) -> Verdict:
        world = self.shop.world(case.name, ITEMS)
        world.latency = case.latency
        recipe, state = self.paths(world)
        args = self.args(recipe, state)
        extra = {"FLOWKIT_CRASH_AT": case.crash_at} if case.crash_at else None
        proc = self.flowkit.start(args, tag=f"{case.name}#1", extra=extra)
        world.arm(proc.pid, case.kill_after_write)
        if case.kill_delay is not None:
            world.first_request.wait(timeout=30)
            time.sleep(case.kill_delay)
            if proc.poll() is None:
                proc.kill()
        try:
            _out, err = proc.communicate(timeout=60)
        except Exception:
            proc.kill()
            proc.communicate()
            raise
        world.arm(0, None)
        code = proc.returncode
        verdict = Verdict(case, fired=code in (-9, 137))
        verdict.runs.append(code)
        if not verdict.fired and code != 0:
            verdict.problems.append(f"the faulty run exited {code}: {err.strip()[-500:]}")
        if state.exists():
            verdict.integrity.append(integrity(state))
        last: Result | None = None
        for attempt in range(2, RERUN_CAP + 2):
            last = self.flowkit.run(args, tag=f"{case.name}#{attempt}")
            verdict.runs.append(last.code)
            verdict.integrity.append(integrity(state))
            if last.code == 0:
                break
        if last is not None and last.code != 0:
            verdict.problems.append(
                f"no clean re-run in {RERUN_CAP} attempts: exit codes {verdict.runs}; "
                f"last stderr {last.stderr.strip()[-300:]!r}, stdout {last.stdout[-500:]!r}"
            )
        self.check(world, state, verdict)
        return verdict

    def check(self, world: World, state: Path, verdict: Verdict) -> None:
        orders = [o["id"] for o in world.orders]
        charges = world.charges_per_order()
        verdict.duplicates = sum(n - 1 for n in charges.values() if n > 1)
        verdict.unexpected = len([e for e in world.applied if e.order not in orders])
        verdict.idempotency_errors = world.idempotency_errors
        verdict.writes = len(world.writes())
        items = dict(
            store_rows(state, "SELECT item_key, status FROM items WHERE recipe = ?", (RECIPE_NAME,))
        )
        steps = {
            (item, step): (status, json.loads(output) if output else None)
            for item, step, status, output in store_rows(
                state,
                "SELECT item_key, step_key, status, output FROM steps WHERE recipe = ?",
                (RECIPE_NAME,),
            )
        }
        applied = {e.order: e for e in world.effects("charge")}
        for order in orders:
            effect = applied.get(order)
            final = world.status.get(order)
            status, output = steps.get((order, "charge"), ("missing", None))
            journaled_id = (output or {}).get("body", {}).get("id")
            if (
                effect is None
                or final != {"status": "paid", "charge": effect.ref}
                or items.get(order) != "done"
                or status != "ok"
                or journaled_id != effect.ref  # the journal holds the answer really applied
                or steps.get((order, "mark_paid"), ("missing", None))[0] != "ok"
            ):
                verdict.lost.append(order)
        for order in orders:
            keys = {
                r.key
                for r in world.writes()
                if r.path == "charges" and isinstance(r.body, dict) and r.body.get("order") == order
            }
            if len(keys) != 1 or None in keys:
                verdict.key_drift.append(f"{order}: charge keys {sorted(map(str, keys))}")
        cursor = store_rows(state, "SELECT value FROM cursors WHERE recipe = ?", (RECIPE_NAME,))
        if cursor != [(json.dumps(orders[-1]),)]:
            verdict.problems.append(f"cursor is {cursor}, expected {orders[-1]!r}")
        bad_integrity = [r for r in verdict.integrity if r != "ok"]
        for label, value in (
            ("duplicate charges", verdict.duplicates),
            ("lost items", len(verdict.lost)),
            ("unexpected effects", verdict.unexpected),
            ("idempotency_error answers", verdict.idempotency_errors),
            ("items sent under several keys", len(verdict.key_drift)),
            ("failed integrity checks", len(bad_integrity)),
        ):
            if value:
                verdict.problems.append(f"{value} {label}")
        if verdict.lost:
            verdict.problems.append(f"lost: {verdict.lost}")
        if verdict.key_drift:
            verdict.problems.append(f"key drift: {verdict.key_drift}")
        if bad_integrity:
            verdict.problems.append(f"integrity: {bad_integrity}")


def report(verdicts: list[Verdict], record: Callable[[str, object], None]) -> None:
    lines = [
        f"{v.case.name}: fired={v.fired} exits={v.runs} writes={v.writes} "
        f"dup={v.duplicates} lost={len(v.lost)}" + ("" if v.ok else f" PROBLEMS {v.problems}")
        for v in verdicts
    ]
    print("\n" + "\n".join(lines))
    record("kill_points", len(verdicts))
    record("fired", sum(v.fired for v in verdicts))
    record("duplicates", sum(v.duplicates for v in verdicts))
    record("lost", sum(len(v.lost) for v in verdicts))
    failures = [f"{v.case.name}: {'; '.join(v.problems)}" for v in verdicts if not v.ok]
    assert not failures, "\n".join(failures)


@pytest.fixture(scope="module")
def crash_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def baseline(shop: Shop, crash_root: Path) -> tuple[int, float]:
    """A clean run: how many write requests it makes, and how long its requests take with the
    random cases' latency (the window random kills aim at)."""
    crasher = Crasher(shop, Flowkit(), crash_root)
    verdict = crasher.run_case(Case("baseline", latency=RANDOM_LATENCY))
    assert verdict.ok and verdict.runs == [0, 0], verdict.problems
    world = shop.worlds["baseline"]
    first_run = world.sent_by("baseline#1")
    writes = len([r for r in first_run if r.method != "GET"])
    assert writes == WRITES
    return writes, first_run[-1].at - first_run[0].at


@pytest.mark.slow
def test_kill_after_every_write_request(
    shop: Shop,
    crash_root: Path,
    baseline: tuple[int, float],
    tally: Tally,
    record_property: Callable[[str, object], None],
) -> None:
    writes, _window = baseline
    crasher = Crasher(shop, Flowkit(), crash_root)
    verdicts = [
        crasher.run_case(Case(f"write{k:02d}", kill_after_write=k)) for k in range(1, writes + 1)
    ]
    tally.add("after-kth-write", verdicts)
    assert all(v.fired for v in verdicts), [v.case.name for v in verdicts if not v.fired]
    report(verdicts, record_property)


def kill_at_named_phases(
    crasher: Crasher,
    label: str,
    prefix: str,
    tally: Tally,
    record_property: Callable[[str, object], None],
) -> None:
    """Kill a run at every named phase point (FLOWKIT_CRASH_AT), re-run to the end, check."""
    verdicts = [
        crasher.run_case(Case(f"{prefix}{phase}-{n}", crash_at=f"{phase}:{n}"))
        for phase, counts in PHASE_POINTS.items()
        for n in counts
    ]
    tally.add(label, verdicts)
    assert all(v.fired for v in verdicts), [v.case.name for v in verdicts if not v.fired]
    report(verdicts, record_property)


@pytest.mark.slow
def test_kill_at_every_named_phase(
    shop: Shop,
    crash_root: Path,
    tally: Tally,
    record_property: Callable[[str, object], None],
) -> None:
    crasher = Crasher(shop, Flowkit(), crash_root)
    kill_at_named_phases(crasher, "named-phase", "", tally, record_property)


@pytest.mark.slow
def test_kill_at_every_named_phase_with_the_writer_process(
    shop: Shop,
    crash_root: Path,
    tally: Tally,
    record_property: Callable[[str, object], None],
) -> None:
    """The same kill points with the SQLite writer in its own process from the start (a run
    this small stays on the writer thread otherwise): the killed run's child writer must not
    commit anything that breaks the next run's view, and must go away with its parent."""
    crasher = Crasher(shop, Flowkit(env={"FLOWKIT_STATE_WRITER": "process"}), crash_root)
    kill_at_named_phases(crasher, "named-phase, writer process", "process-", tally, record_property)


@pytest.mark.slow
def test_kill_at_random_times(
    shop: Shop,
    crash_root: Path,
    baseline: tuple[int, float],
    tally: Tally,
    record_property: Callable[[str, object], None],
) -> None:
    _writes, window = baseline
    crasher = Crasher(shop, Flowkit(), crash_root)
    rng = random.Random(RANDOM_SEED)
    verdicts = []
    for n in range(RANDOM_KILLS):
        delay = rng.random() * window  # a seeded point of the run's request window
        verdicts.append(
            crasher.run_case(
                Case(
                    f"random{n:03d}-{delay * 1000:.0f}ms", kill_delay=delay, latency=RANDOM_LATENCY
                )
            )
        )
    tally.add("random-time", verdicts)
    # the delay is drawn inside the run's request window, so nearly every kill lands
    assert sum(v.fired for v in verdicts) >= len(verdicts) - 1, [v.runs for v in verdicts]
    report(verdicts, record_property)


# writes without idempotency ------------------------------------------------------------------


NOTE_STEP = """\
          - id: note
            use: http.post
            connection: shop
            with:
              path: notes
              json: {order: "${{ item.id }}", text: "paid in full"}
"""


def notes_recipe(world: World) -> str:
    """The charge recipe's trigger and connection, with one non-idempotent POST as its step."""
    text = charge_recipe(world)
    head = text.split("steps:\n", 1)[0]
    return head + "steps:\n" + NOTE_STEP


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["crash_before_send", "kill_after_applied"])
def test_write_without_idempotency_is_not_resent_after_an_unknown_outcome(
    shop: Shop, flowkit: Flowkit, tmp_path: Path, fault: str
) -> None:
    world = shop.world(f"notes-{fault}", orders=2)
    recipe = tmp_path / "notes.yaml"
    recipe.write_text(notes_recipe(world), encoding="utf-8")
    state = tmp_path / "notes.db"
    args = ["run", str(recipe), "--state", str(state), "--concurrency", "1"]
    first, second = (o["id"] for o in world.orders)

    def notes_for(order: str) -> int:
        return len([r for r in world.writes() if r.path == "notes" and r.body["order"] == order])

    # the first run dies between the intent record and the outcome record of the first note
    extra = {"FLOWKIT_CRASH_AT": "before_send:1"} if fault == "crash_before_send" else None
    proc = flowkit.start(args, tag="killed", extra=extra)
    world.arm(proc.pid, 1 if fault == "kill_after_applied" else None)
    proc.communicate(timeout=60)
    world.arm(0, None)
    assert proc.returncode in (-9, 137)
    sent_before = notes_for(first)
    assert sent_before == (1 if fault == "kill_after_applied" else 0)
    assert store_rows(
        state, "SELECT status FROM steps WHERE item_key = ? AND step_key = 'note'", (first,)
    ) == [("started",)]

    # the re-run does not resend it: the item fails with an unknown outcome, the other is done
    rerun = flowkit.run(args, tag="rerun")
    assert rerun.code == 4, rerun.stdout + rerun.stderr  # partial: the other order is done
    assert notes_for(first) == sent_before
    assert notes_for(second) == 1
    assert f"item={first} step=note UNKNOWN" in rerun.stdout
    assert "may or may not have happened" in rerun.stdout
    ((status, error),) = store_rows(
        state, "SELECT status, error FROM items WHERE item_key = ?", (first,)
    )
    assert status == "failed" and "may or may not have happened" in error
    assert store_rows(
        state, "SELECT status FROM steps WHERE item_key = ? AND step_key = 'note'", (first,)
    ) == [("unknown",)]

    # later runs keep it failed and still send nothing
    again = flowkit.run(args, tag="again")
    assert again.code == 1 and notes_for(first) == sent_before
    listed = flowkit.run(["items", "list", "--state", str(state)])
    assert first in listed.stdout and "failed" in listed.stdout

    # a human checked the remote system and asks for it again: exactly one more send
    retry = flowkit.run(["items", "retry", RECIPE_NAME, first, "--state", str(state)])
    assert retry.code == 0, retry.stderr
    final = flowkit.run(args, tag="after-retry")
    assert final.code == 0, final.stdout + final.stderr
    assert notes_for(first) == sent_before + 1
    assert notes_for(second) == 1
    assert integrity(state) == "ok"


def test_a_killed_run_is_closed_by_the_next_one_with_its_write_in_flight_in_its_history(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    world = shop.world("history", orders=2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(charge_recipe(world), encoding="utf-8")
    state = tmp_path / "state.db"
    args = ["run", str(recipe), "--state", str(state), "--concurrency", "1"]
    # the first charge reaches the server; the process dies before journaling its answer
    assert flowkit.run(args, extra={"FLOWKIT_CRASH_AT": "after_send:1"}).code == 137
    (killed,) = store_rows(state, "SELECT id FROM runs")
    in_flight = "SELECT item_key, step_key, outcome FROM attempts WHERE run_id = ? ORDER BY id"
    assert store_rows(state, in_flight, killed) == []  # an intent alone has no attempt row
    shown = flowkit.run(["runs", "show", killed[0], "--state", str(state)])
    assert "started" in shown.stdout, shown.stdout  # the history shows it all the same
    assert flowkit.run(args).code == 0
    runs = store_rows(state, "SELECT status FROM runs ORDER BY started_at, rowid")
    assert runs == [("crashed",), ("ok",)]
    listed = flowkit.run(["runs", "list", "--state", str(state)])
    assert "running" not in listed.stdout, listed.stdout
    assert store_rows(state, in_flight, killed) == [("ord_000", "charge", "started")]
    shown = flowkit.run(["runs", "show", killed[0], "--state", str(state)])
    assert "crashed" in shown.stdout and "started" in shown.stdout, shown.stdout
    assert world.charges_per_order() == {"ord_000": 1, "ord_001": 1}


def test_email_with_an_unknown_outcome_is_resent_under_the_same_message_id(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    """SMTP has no idempotency key. `smtp.send_email` declares idempotency `header` because it
    sends a deterministic Message-ID (fk-<key>@domain); so, as SPEC.md allows ("repeated only
    with the same idempotency key ... deterministic email Message-ID"), a send whose outcome is
    unknown is repeated, and the repeat carries the same Message-ID. The server does not
    deduplicate: the recipient gets a second copy that mail clients can recognise. This pins
    that behaviour (docs/guarantees.md explains it)."""
    world = shop.world("email", orders=2)
    with MailCatcher() as catcher:
        recipe = tmp_path / "mail.yaml"
        head = charge_recipe(world).split("steps:\n", 1)[0]
        recipe.write_text(
            head.replace(
                "connections:\n",
                "connections:\n"
                "  mail:\n"
                "    connector: smtp\n"
                f"    with: {{host: 127.0.0.1, port: {catcher.port}, security: none,"
                " from_address: shop@example.com}\n",
            )
            + "steps:\n"
            "  - id: receipt\n"
            "    use: smtp.send_email\n"
            "    connection: mail\n"
            "    with:\n"
            "      to: customer@example.com\n"
            '      subject: "Receipt for ${{ item.id }}"\n'
            '      text: "Thank you for order ${{ item.id }}."\n',
            encoding="utf-8",
        )
        args = ["run", str(recipe), "--state", str(tmp_path / "mail.db"), "--concurrency", "1"]
        # the server accepts the first mail; the process dies before journaling the answer
        crashed = flowkit.run(args, extra={"FLOWKIT_CRASH_AT": "after_send:1"})
        assert crashed.code == 137
        assert len(catcher.messages) == 1
        rerun = flowkit.run(args)
        assert rerun.code == 0, rerun.stdout + rerun.stderr
        subjects = sorted(m.subject for m in catcher.messages)
        assert subjects == ["Receipt for ord_000", "Receipt for ord_000", "Receipt for ord_001"]
        assert len(catcher.unique()) == 2
        assert list(catcher.duplicates().values()) == [2]  # same Message-ID both times


def test_an_edited_request_is_never_sent_under_the_key_of_an_unfinished_write(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    world = shop.world("edited", orders=2)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(charge_recipe(world), encoding="utf-8")
    args = ["run", str(recipe), "--state", str(tmp_path / "state.db"), "--concurrency", "1"]
    # the first charge is applied by the server; the process dies before journaling it
    assert flowkit.run(args, extra={"FLOWKIT_CRASH_AT": "after_send:1"}).code == 137
    assert world.charges_per_order()["ord_000"] == 1
    # someone edits the recipe before the next cron run
    recipe.write_text(charge_recipe(world).replace("currency: eur", "currency: usd"), "utf-8")
    rerun = flowkit.run(args, tag="after-edit")
    charges_after_edit = [r.body for r in world.sent_by("after-edit") if r.path == "charges"]
    # flowkit refuses instead of sending a different request under the same key: the Stripe
    # semantics would answer idempotency_error, an API that does not compare parameters would
    # replay the old charge as the answer to the new request, and a pruned key would charge again
    assert world.idempotency_errors == 0
    assert [b["order"] for b in charges_after_edit] == ["ord_001"]
    assert rerun.code == 4, rerun.stdout + rerun.stderr
    assert "different input under the same idempotency key" in rerun.stdout
