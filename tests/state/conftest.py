"""Fixtures for the state store tests: a fake clock and a store on a real file in tmp_path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from flowkit.state.sqlite import SqliteStateStore


class FakeClock:
    """Never sleeps: `sleep` advances monotonic time and runs an optional hook."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.mono = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], None] | None = None

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStateStore]:
    s = SqliteStateStore(db_path, clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `python -c code args...` with pipes; every child is killed at teardown."""
    children: list[subprocess.Popen[str]] = []

    def start(code: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(proc)
        return proc

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
