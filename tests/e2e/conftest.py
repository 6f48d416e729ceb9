"""End-to-end fixtures: the shipped recipes against a fresh sandbox, in-process and as a process.

`sandbox` is a started `Sandbox(seed=3)` per test (new state each time, ~30 ms).
`Flow` runs a recipe in-process with the real engine, a SQLite state file in `tmp_path`, the
sandbox's variables as the environment and a `FakeClock` (waits and backoff never sleep).
`cli(...)` runs the real `flowkit` process with the same variables and an explicit `--state`;
`FLOWKIT_CRASH_AT` and `FLOWKIT_CLOCK` are passed through `extra_env`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flowkit.engine.clock import FakeClock
from flowkit.engine.events import Event
from flowkit.engine.runner import RunOptions, RunSummary, run_recipe
from flowkit.recipe.loader import load_recipe
from flowkit.sandbox.runner import Sandbox
from flowkit.state.base import ItemRecord, ItemStatus, StepRecord
from flowkit.state.sqlite import SqliteStateStore

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
EXAMPLES = ROOT / "examples"
CRASH_EXIT = 137  # os._exit(137) in flowkit.engine.crashpoints

DAY = 86_400.0


def recipe(name: str) -> Path:
    return RECIPES / f"{name}.yaml"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=3) as box:
        yield box


@dataclass
class Flow:
    """Runs recipes in-process against the sandbox with a clock the test controls."""

    sandbox: Sandbox
    state: Path
    clock: FakeClock = field(default_factory=FakeClock)
    events: list[Event] = field(default_factory=list)
    env_overrides: dict[str, str | None] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = self.sandbox.env()
        for name, value in self.env_overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    async def run(self, path: Path, **options: Any) -> RunSummary:
        loaded = load_recipe(path)
        store = SqliteStateStore(self.state)
        await store.open()
        try:
            opts = RunOptions(
                clock=self.clock, env=self.env(), listener=self.events.append, seed=1, **options
            )
            return await run_recipe(loaded, store, opts)
        finally:
            await store.close()

    async def items(self, recipe_name: str) -> dict[str, ItemRecord]:
        store = SqliteStateStore(self.state)
        await store.open()
        try:
            records = await store.list_items(recipe_name, None)
            return {r.key: r for r in records}
        finally:
            await store.close()

    async def steps(self, recipe_name: str, item_key: str) -> dict[str, StepRecord]:
        store = SqliteStateStore(self.state)
        await store.open()
        try:
            return await store.get_steps(recipe_name, item_key)
        finally:
            await store.close()

    async def statuses(self, recipe_name: str) -> dict[str, ItemStatus]:
        return {key: r.status for key, r in (await self.items(recipe_name)).items()}

    def plans(self) -> list[Event]:
        return [e for e in self.events if e.kind == "plan"]


@pytest.fixture
def flow(sandbox: Sandbox, tmp_path: Path) -> Flow:
    return Flow(sandbox, tmp_path / "state.db")


@dataclass
class Cli:
    """The real `flowkit` process with the sandbox's variables."""

    sandbox: Sandbox
    state: Path

    def __call__(
        self,
        *args: str,
        extra_env: dict[str, str] | None = None,
        state: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("FLOWKIT_CRASH_AT", "FLOWKIT_CLOCK"))
        }
        env.update(self.sandbox.env())
        env.update(extra_env or {})
        command = [sys.executable, "-c", "from flowkit.cli import main; main()", *args]
        if state:
            command += ["--state", str(self.state)]
        return subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path) -> Cli:
    return Cli(sandbox, tmp_path / "cli-state.db")


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
