"""`flowkit items list` and `flowkit items retry`: failed and waiting items."""

from __future__ import annotations

import sys
from pathlib import Path

from flowkit.commands._store import table, when, with_store
from flowkit.errors import ExitCode


def list_items(*, state: Path | None, recipe: str | None, status: str | None) -> int:
    from flowkit import redact
    from flowkit.state.base import ItemRecord, ItemStatus, StateStore

    async def fetch(store: StateStore) -> list[ItemRecord]:
        if status is not None:
            return list(await store.list_items(recipe, ItemStatus(status)))
        failed = await store.list_items(recipe, ItemStatus.FAILED)
        waiting = await store.list_items(recipe, ItemStatus.WAITING)
        return [*failed, *waiting]

    items = with_store(state, fetch)
    if items is None:
        return ExitCode.OK
    if not items:
        print("no items" + (f" with status {status}" if status else " failed or waiting"))
        return ExitCode.OK
    rows = [
        [
            i.recipe,
            i.key,
            i.status.value,
            str(i.failures),
            when(i.wake_at),
            (i.error or "")[:100],
        ]
        for i in items
    ]
    print(
        redact.redact_text(
            table(rows, ["RECIPE", "KEY", "STATUS", "FAILURES", "WAKE (UTC)", "ERROR"])
        )
    )
    return ExitCode.OK


def retry_items(recipe: str, *, keys: list[str], all_items: bool, state: Path | None) -> int:
    if bool(keys) == all_items:
        sys.stderr.write("flowkit: error: give item keys or `--all`, not both or neither\n")
        return ExitCode.INVALID
    count = with_store(state, lambda s: s.retry_items(recipe, None if all_items else keys))
    if count is None:
        return ExitCode.FAILED
    print(f"{count} item(s) of {recipe} will be tried again by the next `flowkit run`")
    return ExitCode.OK if count or all_items else ExitCode.FAILED
