"""Clocks: the engine reads time and sleeps only through one of these.

`SystemClock` is the real one. `FakeClock` never sleeps: `sleep(n)` advances its time by `n`,
so retries, backoff and waits are tested without real delays. A subprocess can be given a fake
clock with `FLOWKIT_CLOCK=fake:<unix seconds>` (a testing aid, documented in docs/testing.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    # `time.time` itself, not a method that calls it: the engine reads the clock about four
    # times per step, and a Python-level call costs more than the read.
    now = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock you control: starts at `start`, moves only by `sleep` and `advance`."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        self._now += seconds
        await asyncio.sleep(0)


def clock_from_env() -> Clock:
    spec = os.environ.get("FLOWKIT_CLOCK", "")
    if spec.startswith("fake:"):
        return FakeClock(float(spec[5:]))
    return SystemClock()
