"""The test file format (docs/testing.md) as pydantic models, and its checks against the recipe.

Files are read with the recipe loader's commerce-safe YAML and its `Reporter`, so every problem
is a `file:line:col` message with a hint, like a recipe's. A mock's shape (one answer, a list,
or `by_item`) is chosen by a callable discriminator, so an error names the one shape meant
(https://docs.pydantic.dev/latest/concepts/unions/#discriminated-unions-with-callable-discriminator).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from flowkit.connectors.base import (
    ErrorKind,
)
from flowkit.connectors.registry import Registry, default_registry
from flowkit.errors import FlowkitError, RecipeInvalid
from flowkit.expressions import compile_template, has_expression
from flowkit.recipe.loader import LoadedRecipe, Reporter, check_path
from flowkit.recipe.models import USE_PATTERN, Duration
from flowkit.recipe.yamlload import YamlDocument, YamlPath, load_yaml, read_source
from flowkit.state.base import ItemStatus, StepStatus

# -- the test file format ---------------------------------------------------------------------


DEFAULT_NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the FakeClock's default


def _key_text(value: object) -> object:
    """Item keys may be written as numbers (`1001`); the engine stores them as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _env_text(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


Key = Annotated[str, BeforeValidator(_key_text)]
EnvValue = Annotated[str, BeforeValidator(_env_text)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MockError(_Spec):
    kind: ErrorKind
    message: str | None = None
    retry_after: float | None = Field(None, ge=0)
    status: int | None = Field(None, ge=100, le=599)
    maybe_sent: bool = False


class Response(_Spec):
    """One answer of a fixture: an output or an error."""

    output: dict[str, Any] | None = None
    error: ErrorKind | MockError | None = None

    @model_validator(mode="after")
    def _one(self) -> Response:
        if (self.output is None) == (self.error is None):
            raise ValueError("a mock answer needs exactly one of 'output' or 'error'")
        return self


def _answer_shape(value: Any) -> str:
    if isinstance(value, list):
        return "answers"
    if isinstance(value, dict) and ("by_item" in value or "default" in value):
        return "by_item"
    return "answer"


Responses = Annotated[
    Annotated[Response, Tag("answer")]
    | Annotated[list[Response], Field(min_length=1), Tag("answers")],
    Discriminator(_answer_shape),
]


class ByItem(_Spec):
    by_item: dict[str, Responses]
    default: Responses | None = None


Mock = Annotated[
    Annotated[Response, Tag("answer")]
    | Annotated[list[Response], Field(min_length=1), Tag("answers")]
    | Annotated[ByItem, Tag("by_item")],
    Discriminator(_answer_shape),
]
Mocks = dict[str, Mock]


class StateSpec(_Spec):
    cursor: Any = None
    done: list[Key] = Field(default_factory=list)
    failed: list[Key] = Field(default_factory=list)


class CallSpec(_Spec):
    step: str | None = None
    item: Key | None = None
    use: str | None = None
    with_: dict[str, Any] | None = Field(None, alias="with")
    attempt: int | None = Field(None, ge=1)
    key: str | None = None
    outcome: Literal["ok", "error"] | None = None


class RunCounts(_Spec):
    listed: int | None = None
    new: int | None = None
    processed: int | None = None
    done: int | None = None
    failed: int | None = None
    waiting: int | None = None


class ItemCounts(_Spec):
    done: int | None = None
    failed: int | None = None
    waiting: int | None = None
    pending: int | None = None


class Expect(_Spec):
    status: Literal["ok", "partial", "failed"] | None = None
    exit_code: int | None = None
    run: RunCounts | None = None
    items: ItemCounts | None = None
    item_status: dict[str, ItemStatus] | None = None
    item_errors: dict[str, str] | None = None
    steps: dict[str, dict[str, StepStatus]] | None = None
    cursor: Any = None
    writes: list[CallSpec] | None = None
    calls: list[CallSpec] | None = None
    not_called: list[str] | None = None
    retries: dict[str, int] | None = None


class RunSpec(_Spec):
    advance: Duration = 0.0
    mocks: Mocks = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    expect: Expect | None = None


class CaseSpec(_Spec):
    name: str = Field(min_length=1)
    now: str | float | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    state: StateSpec | None = None
    mocks: Mocks = Field(default_factory=dict)
    runs: list[RunSpec] | None = Field(None, min_length=1)
    expect: Expect | None = None


class FileSpec(_Spec):
    recipe: str = Field(min_length=1)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    mocks: Mocks = Field(default_factory=dict)
    tests: list[CaseSpec] = Field(min_length=1)


class TestFileInvalid(RecipeInvalid):
    """A test file (or the recipe it names) has problems; `problems` are file:line:col."""

    __test__: ClassVar[bool] = False


@dataclass
class TestFile:
    """A parsed, checked test file with its recipe."""

    __test__: ClassVar[bool] = False
    path: Path
    spec: FileSpec
    doc: YamlDocument
    loaded: LoadedRecipe

    def where(self, path: YamlPath) -> str:
        mark = self.doc.mark(path)
        return f"{self.path}:{mark.line}:{mark.col}"


def parse_now(value: str | float | None) -> float:
    """Unix seconds of a test's `now`: ISO-8601 text (UTC unless an offset is given) or a number."""
    if value is None:
        return DEFAULT_NOW
    if isinstance(value, int | float):
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'{value}' is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def load_test_file(path: Path | str, *, registry: Registry | None = None) -> TestFile:
    """Parse and check a test file and load its recipe; raises TestFileInvalid."""
    path = Path(path)
    file = str(path)
    try:
        doc = load_yaml(read_source(path), file)
    except RecipeInvalid as exc:
        raise TestFileInvalid(exc.problems) from None
    report = Reporter(file, doc)
    try:
        spec = FileSpec.model_validate(doc.data)
    except ValidationError as exc:
        report.validation_error(exc, model=FileSpec)
        raise TestFileInvalid(report.sorted()) from None
    recipe_path = path.parent / spec.recipe
    if not recipe_path.is_file():
        report.add(
            ("recipe",),
            f"recipe file {recipe_path} not found",
            rule="test",
            hint="the path is relative to the test file",
        )
        raise TestFileInvalid(report.sorted())
    registry = registry or default_registry()
    loaded, problems = check_path(recipe_path, registry=registry)
    if loaded is None:
        raise TestFileInvalid(problems)
    _Checker(report, spec, loaded, registry).run()
    if report.problems:
        raise TestFileInvalid(report.sorted())
    return TestFile(path, spec, doc, loaded)


class _Checker:
    """Checks of a test file against its recipe: names, mock targets, outputs, references."""

    def __init__(
        self, report: Reporter, spec: FileSpec, loaded: LoadedRecipe, registry: Registry
    ) -> None:
        self.report, self.spec, self.registry = report, spec, registry
        recipe = loaded.recipe
        self.recipe = recipe
        self.uses: dict[str, str] = {
            s.id: s.use for s in [*recipe.steps, *recipe.on_failure] if s.use is not None
        }
        self.waits = {s.id for s in recipe.steps if s.wait is not None}
        self.all_uses = set(self.uses.values())
        if recipe.trigger is not None:
            self.all_uses.add(recipe.trigger.use)

    def add(self, path: YamlPath, message: str, hint: str | None = None, key: bool = False) -> None:
        self.report.add(path, message, hint, rule="test", key=key)

    def run(self) -> None:
        spec = self.spec
        self.vars(spec.vars, ("vars",))
        self.mocks(spec.mocks, ("mocks",))
        seen: dict[str, int] = {}
        for i, case in enumerate(spec.tests):
            base: YamlPath = ("tests", i)
            if case.name in seen:
                self.add(
                    (*base, "name"),
                    f"duplicate test name '{case.name}' (also test {seen[case.name] + 1})",
                )
            seen.setdefault(case.name, i)
            try:
                parse_now(case.now)
            except ValueError as exc:
                self.add((*base, "now"), str(exc), 'write e.g. "2026-11-26T10:00:00Z"')
            self.vars(case.vars, (*base, "vars"))
            self.mocks(case.mocks, (*base, "mocks"))
            if case.expect is not None:
                self.expect(case.expect, (*base, "expect"))
            for r, run in enumerate(case.runs or []):
                self.vars(run.vars, (*base, "runs", r, "vars"))
                self.mocks(run.mocks, (*base, "runs", r, "mocks"))
                if run.expect is not None:
                    self.expect(run.expect, (*base, "runs", r, "expect"))

    def vars(self, values: dict[str, Any], path: YamlPath) -> None:
        for name in values:
            if name not in self.recipe.vars:
                known = ", ".join(sorted(self.recipe.vars)) or "none"
                self.add(
                    (*path, name),
                    f"the recipe declares no variable '{name}'",
                    f"known: {known}",
                    key=True,
                )

    def targets(self) -> list[str]:
        return (
            (["trigger"] if self.recipe.trigger else []) + sorted(self.uses) + sorted(self.all_uses)
        )

    def mocks(self, mocks: Mocks, path: YamlPath) -> None:
        for name, mock in mocks.items():
            where = (*path, name)
            if name == "trigger":
                use = self.recipe.trigger.use if self.recipe.trigger else None
                if use is None:
                    self.add(where, "the recipe has no trigger to mock", key=True)
                    continue
            elif name in self.waits:
                self.add(where, f"step '{name}' is a wait; it calls nothing", key=True)
                continue
            elif name in self.uses:
                use = self.uses[name]
            elif name in self.all_uses:
                use = name
            else:
                near = difflib.get_close_matches(name, self.targets(), n=1)
                self.add(
                    where,
                    f"'{name}' is not the trigger, a step id or a connector action of the recipe",
                    f"did you mean '{near[0]}'?"
                    if near
                    else "mock `trigger`, a step id, or a `connector.action` the recipe uses",
                    key=True,
                )
                continue
            output_model = self.registry.action(use)[1].Output
            for answer_path, answer in _answers(mock, where):
                if answer.output is not None:
                    self.output(answer.output, (*answer_path, "output"), output_model, use)

    def output(self, value: Any, path: YamlPath, model: type[BaseModel], use: str) -> None:
        expressions = False
        for sub, text in _strings(value, path):
            if has_expression(text):
                expressions = True
                try:
                    compile_template(text)
                except FlowkitError as exc:
                    offset = getattr(exc, "offset", 0)
                    self.report.at_offset(sub, offset, str(exc), exc.hint, rule="test")
        try:
            model.model_validate(value)
        except ValidationError as exc:
            self.report.validation_error(
                exc,
                model=model,
                base=path,
                rule="test",
                subject=f"output field '{{}}' of {use}",
                skip=(lambda _p, v: isinstance(v, str) and has_expression(v))
                if expressions
                else None,
            )

    def step_ref(self, name: str, path: YamlPath, *, key: bool = False) -> None:
        known = [*self.uses, *self.waits, "trigger"]
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            self.add(
                path,
                f"the recipe has no step '{name}'",
                f"did you mean '{near[0]}'?" if near else None,
                key=key,
            )

    def expect(self, expect: Expect, path: YamlPath) -> None:
        for item, steps in (expect.steps or {}).items():
            for step in steps:
                self.step_ref(step, (*path, "steps", item, step), key=True)
        for step in expect.retries or {}:
            self.step_ref(step, (*path, "retries", step), key=True)
        for name, calls in (("writes", expect.writes), ("calls", expect.calls)):
            for i, call in enumerate(calls or []):
                if call.step is not None:
                    self.step_ref(call.step, (*path, name, i, "step"))
        for i, entry in enumerate(expect.not_called or []):
            if entry not in self.uses and not re.match(USE_PATTERN, entry):
                self.step_ref(entry, (*path, "not_called", i))


def _answers(mock: Mock, path: YamlPath) -> list[tuple[YamlPath, Response]]:
    """Every answer of a mock with its path in the file."""
    if isinstance(mock, Response):
        return [(path, mock)]
    if isinstance(mock, list):
        return [((*path, i), answer) for i, answer in enumerate(mock)]
    out: list[tuple[YamlPath, Response]] = []
    for key, answers in mock.by_item.items():
        out += _answers(answers, (*path, "by_item", key))
    if mock.default is not None:
        out += _answers(mock.default, (*path, "default"))
    return out


def _strings(value: Any, path: YamlPath) -> Iterable[tuple[YamlPath, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _strings(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _strings(sub, (*path, i))
