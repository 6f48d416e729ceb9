"""Helpers for engine tests: write a recipe, load it, run it with a fake clock."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowkit.connectors import noop
from flowkit.engine.clock import FakeClock
from flowkit.engine.events import Event
from flowkit.engine.runner import RunOptions, RunSummary, run_recipe
from flowkit.recipe.loader import load_recipe
from flowkit.state.sqlite import SqliteStateStore


@pytest.fixture(autouse=True)
def _reset_noop() -> Iterator[None]:
    noop.reset_failures()
    yield
    noop.reset_failures()


class Harness:
    """Runs recipes in-process against a real SQLite store with a clock the test controls."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state = tmp_path / "state.db"
        self.clock = FakeClock()
        self.events: list[Event] = []

    def recipe(self, text: str, name: str = "recipe.yaml") -> Path:
        path = self.tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    async def run(self, path: Path, **options: Any) -> RunSummary:
        loaded = load_recipe(path, registry=options.get("registry"))
        store = SqliteStateStore(self.state)
        await store.open()
        try:
            opts = RunOptions(clock=self.clock, listener=self.events.append, seed=1, **options)
            return await run_recipe(loaded, store, opts)
        finally:
            await store.close()

    async def store(self) -> SqliteStateStore:
        store = SqliteStateStore(self.state)
        await store.open()
        return store

    def steps(self, status: str | None = None) -> list[Event]:
        return [
            e for e in self.events if e.kind == "step" and (status is None or e.status == status)
        ]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)
