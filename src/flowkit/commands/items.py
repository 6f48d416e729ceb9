"""`flowkit items list` and `flowkit items retry`: failed and waiting items."""

from __future__ import annotations

import sys
from pathlib import Path

from flowkit.commands._store import open_existing, table, when
from flowkit.errors import ExitCode


def list_items(*, state: Path | None, recipe: str | None, status: str | None) -> int:
    from flowkit import redact
    from flowkit.state.base import ItemStatus

    store = open_existing(state)
    if store is None:
        return ExitCode.OK
    with store:
        if status is not None:
            items = store.list_items(recipe, ItemStatus(status))
        else:
            items = store.list_items(recipe, ItemStatus.FAILED)
            items += store.list_items(recipe, ItemStatus.WAITING)
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
    store = open_existing(state)
    if store is None:
        return ExitCode.FAILED
    with store:
        count = store.retry_items(recipe, None if all_items else keys)
    print(f"{count} item(s) of {recipe} will be tried again by the next `flowkit run`")
    return ExitCode.OK if count or all_items else ExitCode.FAILED
