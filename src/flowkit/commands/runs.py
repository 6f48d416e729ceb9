"""`flowkit runs list` and `flowkit runs show RUN`: the run history."""

from __future__ import annotations

import sys
from pathlib import Path

from flowkit.commands._store import open_existing, table, when
from flowkit.errors import ExitCode
from flowkit.state.base import AttemptRecord


def list_runs(*, state: Path | None, recipe: str | None, limit: int) -> int:
    from flowkit import redact

    store = open_existing(state)
    if store is None:
        return ExitCode.OK
    with store:
        runs = store.list_runs(recipe, limit)
    if not runs:
        print("no runs recorded")
        return ExitCode.OK
    rows = []
    for r in runs:
        s = r.summary or {}
        rows.append(
            [r.id, r.recipe, r.status, when(r.started_at)]
            + [str(s.get(k, "")) for k in ("new", "done", "failed", "waiting")]
        )
    header = ["RUN", "RECIPE", "STATUS", "STARTED (UTC)", "NEW", "DONE", "FAILED", "WAITING"]
    print(redact.redact_text(table(rows, header)))
    return ExitCode.OK


def show_run(run_id: str, *, state: Path | None) -> int:
    from flowkit import redact

    store = open_existing(state)
    if store is None:
        return ExitCode.FAILED
    with store:
        runs = store.list_runs(None, 1000)
        if run_id == "last":
            matches = runs[:1]
        else:
            matches = [r for r in runs if r.id == run_id] or [
                r for r in runs if r.id.startswith(run_id)
            ]
        if len(matches) != 1:
            problem = "no run matches" if not matches else "several runs match; give more of the id"
            sys.stderr.write(f"flowkit: error: run '{run_id}': {problem}\n")
            return ExitCode.FAILED
        run = matches[0]
        attempts = store.run_attempts(run.id)
    s = run.summary or {}
    print(f"run {run.id}  recipe {run.recipe}  status {run.status}")
    print(f"started {when(run.started_at)}  finished {when(run.finished_at)}")
    print(
        f"items: {s.get('new', 0)} new, {s.get('processed', 0)} processed, "
        f"{s.get('done', 0)} done, {s.get('failed', 0)} failed, {s.get('waiting', 0)} waiting"
    )
    if s.get("trigger_error"):
        print(redact.redact_text(f"trigger error: {s['trigger_error']}"))
    by_step: dict[tuple[str, str], list[AttemptRecord]] = {}
    for a in attempts:
        by_step.setdefault((a.item_key, a.step_key), []).append(a)
    rows = []
    for (item, step), records in sorted(by_step.items()):
        last = records[-1]
        tries = len([x for x in records if x.outcome not in ("started", "skipped", "waiting")])
        rows.append([item, step, last.outcome, str(tries), (last.error or "")[:120]])
    if rows:
        print()
        print(redact.redact_text(table(rows, ["ITEM", "STEP", "OUTCOME", "ATTEMPTS", "ERROR"])))
    return ExitCode.OK
