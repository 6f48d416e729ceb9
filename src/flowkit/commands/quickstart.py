"""`flowkit quickstart`: run the real invoice-on-payment recipe against the sandbox, explain it.

What it does, in order:
  1. start `Sandbox(seed=3)` (Stripe with 3 demo payments, QuickBooks, a mail catcher, ...) on
     127.0.0.1 with free ports;
  2. run `recipes/invoice-on-payment.yaml` in this process with the engine (the same code path
     as `flowkit run`, the same run output), with the sandbox's variables as its environment
     and a SQLite state file;
  3. read what the sandbox itself recorded (invoices created, emails caught, Stripe charges
     marked) and say it in plain words, with where to look and what to try next;
  4. stop the sandbox. The exit code is 0 only when every demo payment went all the way through.

The state file. The sandbox is new on every invocation but re-creates the same demo payments
(same charge ids), so a state file kept from an earlier quickstart would already hold them as
done and nothing would happen. Hence the default file, `.flowkit/quickstart.db`, is deleted
before each run (and the command says so). A file chosen with `--state` is never deleted: if it
already holds runs, the quickstart refuses to mix its demo data into it and asks for another.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.errors import ExitCode

if TYPE_CHECKING:
    from flowkit.engine.runner import RunSummary
    from flowkit.sandbox.runner import Sandbox

RECIPE_NAME = "invoice-on-payment.yaml"
DEFAULT_STATE = Path(".flowkit") / "quickstart.db"
SEED = 3


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _fail(line: str, hint: str | None = None) -> None:
    sys.stderr.write(f"flowkit quickstart: {line}\n")
    if hint:
        sys.stderr.write(f"  hint: {hint}\n")


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def recipe_candidates() -> list[Path]:
    """Where the shipped recipe may be: the checkout's `recipes/` next to `src/flowkit`, then a
    copy inside the package (`flowkit/templates/`)."""
    import flowkit

    package = Path(flowkit.__file__).resolve().parent
    return [package.parents[1] / "recipes" / RECIPE_NAME, package / "templates" / RECIPE_NAME]


def find_recipe() -> Path | None:
    return next((path for path in recipe_candidates() if path.is_file()), None)


def _state_conflict(path: Path) -> str | None:
    """Why an explicitly chosen state file cannot be used, or None."""
    if not path.exists():
        return None
    from flowkit.state.sqlite import SqliteStateStore

    async def runs() -> int:
        store = SqliteStateStore(path)
        await store.open()
        try:
            return len(await store.list_runs(None, 1))
        finally:
            await store.close()

    try:
        if asyncio.run(runs()) == 0:
            return None
    except Exception as exc:  # a file that is not a flowkit state store
        return f"{path} exists and cannot be opened as a flowkit state store ({exc})"
    return (
        f"{_shown(path)} already holds runs; the quickstart would mix its demo payments into "
        "them (and the sandbox re-creates the same payments, so nothing would be invoiced)"
    )


def _remove_state(path: Path) -> bool:
    removed = False
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = Path(f"{path}{suffix}")
        if candidate.exists():
            candidate.unlink()
            removed = True
    return removed


def _choose_state(state: Path | None) -> tuple[Path, bool] | None:
    """(path, is_default), or None after an error message."""
    # `--state` of `flowkit quickstart` does not read FLOWKIT_STATE (see cli.py): a
    # production store never gets demo runs.
    if state is None or Path(state).expanduser().resolve() == DEFAULT_STATE.resolve():
        return DEFAULT_STATE, True
    path = Path(state).expanduser()
    problem = _state_conflict(path)
    if problem is not None:
        _fail(problem, "delete that file, or run `flowkit quickstart` without --state")
        return None
    return path, False


def run(state: Path | None = None) -> int:
    """Start the sandbox, run the invoice recipe in-process, report what happened, stop."""
    from flowkit.errors import FlowkitError, RecipeInvalid
    from flowkit.recipe.loader import load_recipe
    from flowkit.sandbox.runner import Sandbox

    recipe_path = find_recipe()
    if recipe_path is None:
        looked = " and ".join(str(p) for p in recipe_candidates())
        _fail(
            f"the shipped recipe {RECIPE_NAME} was not found (looked in {looked})",
            "run the quickstart from a clone of the flowkit repository, installed with "
            "`pip install -e .`",
        )
        return ExitCode.FAILED
    try:
        loaded = load_recipe(recipe_path)
    except RecipeInvalid as exc:
        for problem in exc.problems:
            sys.stderr.write(problem.format() + "\n")
        _fail(f"{recipe_path} is invalid; nothing was run")
        return ExitCode.INVALID
    chosen = _choose_state(state)
    if chosen is None:
        return ExitCode.INVALID
    state_path, is_default = chosen

    _say("flowkit quickstart: a real recipe, end to end, against local stand-ins of Stripe,")
    _say("QuickBooks and a mail server. Nothing leaves this machine; no account is needed.")
    _say()
    sandbox = Sandbox(seed=SEED)
    try:
        sandbox.start()
    except OSError as exc:
        _fail(f"the sandbox could not listen on 127.0.0.1: {exc.strerror or exc}")
        return ExitCode.FAILED
    try:
        payments = [c for c in sandbox.stripe.charges.values() if c.get("status") == "succeeded"]
        _say(f"1. Sandbox started on 127.0.0.1 with {len(payments)} demo payments in Stripe.")
        if is_default:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            fresh = (
                "removed the previous one: the sandbox is new each time"
                if _remove_state(state_path)
                else "new"
            )
            _say(f"2. Running {_shown(recipe_path)}")
            _say(f"   state: {_shown(state_path)} ({fresh})")
        else:
            _say(f"2. Running {_shown(recipe_path)}")
            _say(f"   state: {_shown(state_path)}")
        _say()
        try:
            summary = asyncio.run(_run_recipe(loaded, state_path, sandbox))
        except FlowkitError as exc:
            _fail(str(exc), exc.hint)
            return int(exc.exit_code)
        _say()
        ok = _report(sandbox, payments, summary, state_path, recipe_path)
    finally:
        sandbox.stop()
    _say("The sandbox is stopped; what it recorded is gone (the state file stays).")
    return ExitCode.OK if ok else ExitCode.FAILED


async def _run_recipe(loaded: Any, state_path: Path, sandbox: Sandbox) -> RunSummary:
    from flowkit.console import RunConsole
    from flowkit.engine.runner import RunOptions, run_recipe
    from flowkit.state.sqlite import SqliteStateStore

    env = {**os.environ, **sandbox.env()}
    console = RunConsole(fmt="text")
    store = SqliteStateStore(state_path)
    await store.open()
    try:
        console.start()
        summary = await run_recipe(loaded, store, RunOptions(env=env, listener=console))
        console.finish(summary.as_dict(), int(summary.exit_code))
        return summary
    finally:
        console.stop()
        await store.close()


def _report(
    sandbox: Sandbox,
    payments: list[dict[str, Any]],
    summary: RunSummary,
    state_path: Path,
    recipe_path: Path,
) -> bool:
    """Say what the sandbox recorded; True when every payment went all the way through."""
    ids = {str(c["id"]) for c in payments}
    qbo = sandbox.quickbooks
    invoices = [
        inv
        for inv in qbo.created_invoices
        if any(charge in str(inv.get("PrivateNote", "")) for charge in ids)
    ]
    emails = sandbox.mail.unique()
    marked = [
        c
        for c in sandbox.stripe.marked_charges()
        if c["id"] in ids and (c.get("metadata") or {}).get("qbo_invoice_id")
    ]
    expected = len(ids)
    numbers = ", ".join(str(inv.get("DocNumber")) for inv in invoices)
    _say("3. The result, from the sandbox's own records:")
    _say(
        f"   {_count(len(invoices), 'payment')} invoiced in QuickBooks"
        + (f" (invoices {numbers})" if numbers else "")
    )
    _say(f"   {_count(len(emails), 'invoice email')} sent")
    _say(
        f"   {_count(len(marked), 'Stripe charge')} marked invoiced "
        "(metadata qbo_invoice_id, qbo_invoice_number)"
    )
    if emails:
        _say("   The emails the sandbox's mail server caught:")
        for mail in emails:
            _say(f"     to {', '.join(mail.to)}: {mail.subject}")
    ok = (
        int(summary.exit_code) == 0
        and len(invoices) == expected
        and len(emails) == expected
        and len(marked) == expected
    )
    state = _shown(state_path)
    _say()
    if ok:
        _say(f"All {expected} payments went through: invoiced, emailed and marked, once each.")
    else:
        _say(f"Not everything went through: {expected} payments were expected at every step.")
        _say(f"   see `flowkit items list --state {state}` and the errors above")
    _say()
    _say("Where to look:")
    _say(f"   flowkit runs show last --state {state}     every item and step of this run")
    _say(f"   flowkit runs list --state {state}          the run history")
    _say()
    _say("What to try next:")
    _say("   flowkit sandbox --env-file .env    keep the stand-ins running (in another terminal),")
    _say("   then, with the same .env: a dry run shows what would be sent, sending nothing")
    _say(f"   flowkit run {_shown(recipe_path)} --env-file .env --state /tmp/demo.db --dry-run")
    hello = recipe_path.parent.parent / "examples" / "hello.yaml"
    if hello.is_file():
        _say(f"   flowkit run {_shown(hello)} --state /tmp/demo.db")
    _say("   flowkit new recipe my-first-recipe   a skeleton; check it with `flowkit validate`")
    guide = recipe_path.parent.parent / "docs" / "getting-started.md"
    where = _shown(guide) if guide.is_file() else "docs/getting-started.md"
    _say(f"   {where} walks through all of it.")
    _say()
    return ok


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
