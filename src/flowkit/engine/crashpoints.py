"""Named crash points for the crash tests: `FLOWKIT_CRASH_AT=<phase>:<n>` kills the process
(`os._exit(137)`, like SIGKILL: no cleanup, no flush) at the n-th time `phase` is reached.

Phases: before_admit, after_admit, before_send (intent journaled, request not sent),
after_send (response received, not journaled), after_journal (outcome journaled).
Unset (the normal case) costs one dictionary lookup per call.
"""

from __future__ import annotations

import os

_spec = os.environ.get("FLOWKIT_CRASH_AT", "")
_phase, _, _count = _spec.partition(":")
_target = int(_count) if _count.isdigit() else 1
_seen = 0
active = bool(_phase)  # the engine waits for durability at the crash points only when testing


def reached(phase: str) -> None:
    global _seen
    if not _phase or phase != _phase:
        return
    _seen += 1
    if _seen >= _target:
        os._exit(137)
