"""The state store: cursors, item journals, waits, failed items and run history."""

from flowkit.state.base import (
    AttemptRecord,
    ItemRecord,
    ItemStatus,
    ItemWrite,
    Lock,
    RunRecord,
    StateStore,
    StepRecord,
    StepStatus,
    StepWrite,
)

__all__ = [
    "AttemptRecord",
    "ItemRecord",
    "ItemStatus",
    "ItemWrite",
    "Lock",
    "RunRecord",
    "StateStore",
    "StepRecord",
    "StepStatus",
    "StepWrite",
]
