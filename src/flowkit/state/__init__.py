"""The state store: cursors, item journals, waits, failed items and run history."""

from flowkit.state.base import (
    AttemptRecord,
    ItemRecord,
    ItemStatus,
    Lock,
    RunRecord,
    StateStore,
    StepRecord,
    StepStatus,
)

__all__ = [
    "AttemptRecord",
    "ItemRecord",
    "ItemStatus",
    "Lock",
    "RunRecord",
    "StateStore",
    "StepRecord",
    "StepStatus",
]
