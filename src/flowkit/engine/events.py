"""What the engine reports while it runs. The console renders these; the engine never prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Event:
    kind: str  # see KINDS
    recipe: str
    run_id: str
    item: str | None = None
    step: str | None = None
    status: str | None = None
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


KINDS = (
    "run_started",  # data: dry_run, state
    "trigger",  # data: listed, new
    "item_started",
    "step",  # status: ok | skipped | failed | unknown | waiting | reused ; data: attempts
    "retry",  # status: error kind; data: attempt, delay
    "plan",  # dry run: a write that was not sent; data: use, input, changes, key
    "item_finished",  # status: done | failed | waiting
    "hook",  # a failure hook ran; status ok | failed
    "run_finished",  # data: summary
)

Listener = Callable[[Event], None]


def ignore(_event: Event) -> None:
    return None
