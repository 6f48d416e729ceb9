"""Running a test file through the real engine, and checking its expectations."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from flowkit.connectors.base import (
    Effect,
)
from flowkit.connectors.registry import Registry, default_registry
from flowkit.errors import FlowkitError
from flowkit.recipe.yamlload import YamlPath
from flowkit.state.base import ItemStatus
from flowkit.testing.fixtures import (
    RecordedCall,
    _MockResponder,
    _show,
    base_step,
    fixture_registry,
    used_connectors,
)
from flowkit.testing.spec import (
    CallSpec,
    Expect,
    RunSpec,
    StateSpec,
    TestFile,
    load_test_file,
    parse_now,
)

# -- running tests ----------------------------------------------------------------------------


@dataclass
class TestResult:
    """The outcome of one test: `failures` are messages (`file:line:col: ...`)."""

    __test__: ClassVar[bool] = False
    file: Path
    name: str
    line: int
    failures: list[str] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def report(self) -> str:
        head = f"{'PASS' if self.passed else 'FAIL'}  {self.name}"
        return "\n".join(
            [head, *(f"      {line}" for f in self.failures for line in f.splitlines())]
        )


def run_test_file(path: Path | str, *, registry: Registry | None = None) -> list[TestResult]:
    """Run every test of a file (from synchronous code); raises TestFileInvalid."""
    return asyncio.run(arun_test_file(path, registry=registry))


async def arun_test_file(
    path: Path | str | TestFile, *, registry: Registry | None = None
) -> list[TestResult]:
    """Run every test of a file; raises TestFileInvalid."""
    registry = registry or default_registry()
    test_file = path if isinstance(path, TestFile) else load_test_file(path, registry=registry)
    return [await _run_case(test_file, i, registry) for i in range(len(test_file.spec.tests))]


async def _run_case(test_file: TestFile, index: int, registry: Registry) -> TestResult:
    from flowkit.engine.clock import FakeClock
    from flowkit.engine.events import Event
    from flowkit.engine.runner import RunOptions, RunSummary, required_secrets, run_recipe
    from flowkit.state.sqlite import SqliteStateStore

    spec, case = test_file.spec, test_file.spec.tests[index]
    base: YamlPath = ("tests", index)
    started = time.perf_counter()
    result = TestResult(test_file.path, case.name, test_file.doc.mark((*base, "name")).line)
    loaded = test_file.loaded
    clock = FakeClock(parse_now(case.now))
    responder = _MockResponder(test_file, clock.now)
    fixtures = fixture_registry(used_connectors(loaded, registry), responder)
    env = {name: f"test-{name}" for name in required_secrets(loaded)}
    env.update(spec.env)
    env.update(case.env)
    runs = case.runs or [RunSpec()]
    checker = _Expectations(test_file, loaded.recipe.name, result.failures)
    with tempfile.TemporaryDirectory(prefix="flowkit-test-") as tmp:
        store = SqliteStateStore(Path(tmp) / "state.db")
        await store.open()
        try:
            await _seed(store, loaded.recipe.name, case.state, clock.now())
            all_events: list[Event] = []
            summary: RunSummary | None = None
            for number, run in enumerate(runs, start=1):
                clock.advance(run.advance)
                layers = [(spec.mocks, ("mocks",)), (case.mocks, (*base, "mocks"))]
                layers.append((run.mocks, (*base, "runs", number - 1, "mocks")))
                responder.begin(number, layers)
                events: list[Event] = []
                first_call = len(responder.calls)
                options = RunOptions(
                    clock=clock,
                    registry=fixtures,
                    listener=events.append,
                    env=env,
                    variables={**spec.vars, **case.vars, **run.vars},
                    concurrency=1,
                    seed=0,
                )
                try:
                    summary = await run_recipe(loaded, store, options)
                except FlowkitError as exc:
                    where = test_file.where((*base, "name"))
                    result.failures.append(f"{where}: run {number}: {exc}")
                    summary = None
                    break
                all_events += events
                if run.expect is not None:
                    label = f"run {number}: " if case.runs else ""
                    path = (*base, "runs", number - 1, "expect")
                    await checker.check(
                        run.expect,
                        path,
                        label,
                        store,
                        summary,
                        events,
                        responder.calls[first_call:],
                    )
            if summary is not None and case.expect is not None:
                label = "after all runs: " if len(runs) > 1 else ""
                await checker.check(
                    case.expect,
                    (*base, "expect"),
                    label,
                    store,
                    summary,
                    all_events,
                    responder.calls,
                )
        finally:
            await store.close()
    for at, message in responder.problems:
        where = test_file.where(at if at is not None else (*base, "name"))
        result.failures.insert(0, f"{where}: {message}")
    result.calls = responder.calls
    result.duration = time.perf_counter() - started
    return result


async def _seed(store: Any, recipe: str, state: StateSpec | None, now: float) -> None:
    if state is None:
        return
    keys: list[tuple[str, Any]] = [(key, {}) for key in [*state.done, *state.failed]]
    cursor = json.dumps(state.cursor) if "cursor" in state.model_fields_set else None
    if keys or cursor is not None:
        await store.admit_items(recipe, keys, cursor, now)
    for key in state.done:
        await store.set_item(recipe, key, ItemStatus.DONE, now)
    for key in state.failed:
        await store.set_item(recipe, key, ItemStatus.FAILED, now, error="failed before the test")


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def subset_diff(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Differences of `actual` from `expected`: mappings by the expected keys, lists fully."""
    label = where or "value"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{label}: expected a mapping, got {_show(actual)}"]
        out: list[str] = []
        for key, value in expected.items():
            sub = f"{where}.{key}" if where else str(key)
            if key not in actual:
                out.append(f"{sub}: missing (expected {_show(value)})")
            else:
                out += subset_diff(value, actual[key], sub)
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{label}: expected {_show(expected)}, got {_show(actual)}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in subset_diff(e, a, f"{where}[{i}]")
        ]
    if _equal(expected, actual):
        return []
    return [f"{label}: expected {_show(expected)}, got {_show(actual)}"]


def _call_diff(spec: CallSpec, call: RecordedCall) -> list[str]:
    out: list[str] = []
    if spec.step is not None and spec.step not in (call.step, base_step(call.step)):
        out.append(f"step: expected {spec.step}, got {call.step}")
    for name, actual in (
        ("item", call.item),
        ("use", call.use),
        ("attempt", call.attempt),
        ("key", call.key),
        ("outcome", call.outcome),
    ):
        expected = getattr(spec, name)
        if expected is not None and expected != actual:
            out.append(f"{name}: expected {_show(expected)}, got {_show(actual)}")
    if spec.with_ is not None:
        out += subset_diff(spec.with_, call.input, "with")
    return out


class _Expectations:
    def __init__(self, test_file: TestFile, recipe: str, failures: list[str]) -> None:
        self.file, self.recipe, self.failures = test_file, recipe, failures

    def fail(self, path: YamlPath, label: str, message: str) -> None:
        self.failures.append(f"{self.file.where(path)}: {label}{message}")

    def compare(self, path: YamlPath, label: str, what: str, expected: Any, actual: Any) -> None:
        if not _equal(expected, actual):
            self.fail(path, label, f"{what}: expected {_show(expected)}, got {_show(actual)}")

    async def check(
        self,
        expect: Expect,
        path: YamlPath,
        label: str,
        store: Any,
        summary: Any,
        events: list[Any],
        calls: list[RecordedCall],
    ) -> None:
        if expect.status is not None:
            self.compare((*path, "status"), label, "status", expect.status, summary.status)
        if expect.exit_code is not None:
            self.compare(
                (*path, "exit_code"), label, "exit_code", expect.exit_code, int(summary.exit_code)
            )
        if expect.run is not None:
            for name in sorted(expect.run.model_fields_set):
                self.compare(
                    (*path, "run", name),
                    label,
                    f"run.{name}",
                    getattr(expect.run, name),
                    getattr(summary, name),
                )
        await self.check_items(expect, path, label, store)
        if "cursor" in expect.model_fields_set:
            raw = await store.get_cursor(self.recipe)
            actual = json.loads(raw) if raw is not None else None
            self.compare((*path, "cursor"), label, "cursor", expect.cursor, actual)
        if expect.writes is not None:
            writes = [c for c in calls if c.effect != Effect.READ.value and c.outcome == "ok"]
            self.check_calls(expect.writes, writes, (*path, "writes"), label, "writes")
        if expect.calls is not None:
            self.check_calls(expect.calls, calls, (*path, "calls"), label, "calls")
        for i, name in enumerate(expect.not_called or []):
            hits = [c for c in calls if name in (c.use, base_step(c.step))]
            if hits:
                self.fail(
                    (*path, "not_called", i),
                    label,
                    f"not_called: {name} was called {len(hits)} time(s), first: "
                    f"{hits[0].describe()}",
                )
        for step, count in (expect.retries or {}).items():
            actual = sum(1 for e in events if e.kind == "retry" and base_step(e.step or "") == step)
            self.compare((*path, "retries", step), label, f"retries.{step}", count, actual)

    async def check_items(self, expect: Expect, path: YamlPath, label: str, store: Any) -> None:
        if expect.items is not None:
            records = await store.list_items(self.recipe, limit=1_000_000)
            for name in sorted(expect.items.model_fields_set):
                actual = sum(1 for r in records if r.status.value == name)
                self.compare(
                    (*path, "items", name),
                    label,
                    f"items.{name}",
                    getattr(expect.items, name),
                    actual,
                )
        for key, status in (expect.item_status or {}).items():
            record = await store.get_item(self.recipe, key)
            got = record.status.value if record is not None else "not in the state store"
            self.compare(
                (*path, "item_status", key), label, f"item_status.{key}", status.value, got
            )
        for key, text in (expect.item_errors or {}).items():
            record = await store.get_item(self.recipe, key)
            error = record.error if record is not None else None
            if error is None or text not in error:
                self.fail(
                    (*path, "item_errors", key),
                    label,
                    f"item_errors.{key}: expected an error containing {_show(text)}, "
                    f"got {_show(error)}",
                )
        for key, steps in (expect.steps or {}).items():
            journal = await store.get_steps(self.recipe, key)
            for step, step_status in steps.items():
                step_record = journal.get(step)
                got = step_record.status.value if step_record is not None else "not run"
                self.compare(
                    (*path, "steps", key, step),
                    label,
                    f"steps.{key}.{step}",
                    step_status.value,
                    got,
                )

    def check_calls(
        self,
        specs: list[CallSpec],
        calls: list[RecordedCall],
        path: YamlPath,
        label: str,
        what: str,
    ) -> None:
        for i, (spec, call) in enumerate(zip(specs, calls, strict=False)):
            diffs = _call_diff(spec, call)
            if diffs:
                self.fail(
                    (*path, i),
                    label,
                    f"{what}[{i}]: " + "; ".join(diffs) + f"\n  got: {call.describe()}",
                )
        if len(specs) != len(calls):
            listed = "".join(f"\n  {i}: {c.describe()}" for i, c in enumerate(calls))
            self.fail(
                path,
                label,
                f"{what}: expected {len(specs)} call(s), got {len(calls)}"
                + (":" + listed if calls else ""),
            )


# -- discovery --------------------------------------------------------------------------------

_SKIP_DIRS = {"node_modules", "venv", "__pycache__", "site-packages"}


def discover(paths: Sequence[Path | str]) -> list[Path]:
    """Test files under `paths`: files as given, directories searched for `*.test.yaml`
    (and `*.test.yml`), skipping hidden directories and virtual environments."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for candidate in sorted(path.rglob("*.test.y*ml")):
                parts = candidate.relative_to(path).parts[:-1]
                if any(p.startswith(".") or p in _SKIP_DIRS for p in parts):
                    continue
                if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
                    found.append(candidate)
        else:
            raise FlowkitError(f"{path}: no such file or directory")
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)
