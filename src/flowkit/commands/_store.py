"""Open the state store for the read/repair commands (`runs`, `items`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowkit.state.sync import SyncStateStore


def open_existing(state: Path | None) -> SyncStateStore | None:
    """The state store for a listing or repair command (not yet opened), or None after a
    one-line message when there is no state file yet."""
    from flowkit.state.sqlite import default_state_path
    from flowkit.state.sync import SyncStateStore

    path = Path(state) if state is not None else default_state_path()
    if not path.exists():
        sys.stderr.write(f"flowkit: no state store at {path} yet (nothing has run)\n")
        return None
    return SyncStateStore(path)


def when(ts: float | None) -> str:
    import time

    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
