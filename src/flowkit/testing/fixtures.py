"""Fixture connectors: stand-ins with the real actions' models, answered from a test's mocks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Runtime,
)
from flowkit.connectors.registry import Registry
from flowkit.errors import FlowkitError
from flowkit.expressions import render_value
from flowkit.recipe.loader import LoadedRecipe
from flowkit.recipe.yamlload import YamlPath
from flowkit.testing.spec import ByItem, Mock, MockError, Mocks, Response, Responses, TestFile


def _show(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- fixture connectors -----------------------------------------------------------------------


@dataclass
class RecordedCall:
    """One call of a fixture action (one attempt)."""

    run: int
    step: str  # the engine's step key: `invoice`, `email[0]`, `on_failure.alert#1`, `trigger`
    item: str
    use: str
    effect: str
    input: Any
    key: str
    attempt: int
    outcome: str = "ok"  # ok | error
    output: Any = None
    error: str | None = None
    at: float = 0.0  # the fake clock's time of the call

    def describe(self) -> str:
        text = f"{self.use} (step {self.step}"
        text += f", item {self.item}" if self.item else ""
        text += f", attempt {self.attempt}) with {_show(self.input, 160)}"
        return text if self.outcome == "ok" else text + f" -> error: {self.error}"


def base_step(step_key: str) -> str:
    """The step id of an engine step key: `email[2]` -> `email`, `on_failure.alert#1` -> `alert`."""
    key = step_key.removeprefix("on_failure.").split("#", 1)[0]
    return re.sub(r"\[\d+\]$", "", key)


class Responder(Protocol):
    """Answers the calls of fixture actions (`flowkit test` answers from the test's mocks)."""

    async def respond(self, action: FixtureAction, input: BaseModel, call: CallContext) -> Any: ...


class FixtureAction(Action[BaseModel, BaseModel]):
    """A stand-in with a real action's models, effect and idempotency; `run` asks a responder."""

    def __init__(self, real: Action[Any, Any], use: str, responder: Responder) -> None:
        self.real = real
        self.use = use
        self.responder = responder

    @classmethod
    def of(cls, real: Action[Any, Any], use: str, responder: Responder) -> FixtureAction:
        attrs = {
            "name": real.name,
            "description": real.description,
            "effect": real.effect,
            "idempotency": real.idempotency,
            "Input": real.Input,
            "Output": real.Output,
        }
        subclass = type(f"Fixture_{use.replace('.', '_')}", (cls,), attrs)
        return subclass(real, use, responder)  # type: ignore[no-any-return]

    async def run(self, session: Any, input: BaseModel, call: CallContext) -> BaseModel:
        return await self.responder.respond(self, input, call)  # type: ignore[no-any-return]

    def simulate(self, input: BaseModel, call: CallContext) -> BaseModel:
        return self.real.simulate(input, call)  # type: ignore[no-any-return]


class _AnySettings(BaseModel):
    model_config = ConfigDict(extra="allow")


class FixtureConnector(Connector):
    """A connector with the same name and actions as `real`, answered by `responder`.

    Connection settings are accepted as they render (nothing connects)."""

    def __init__(self, real: Connector, responder: Responder) -> None:
        actions = [
            FixtureAction.of(action, f"{real.name}.{name}", responder)
            for name, action in real.actions.items()
        ]
        super().__init__(
            real.name, description=real.description, settings=_AnySettings, actions=list(actions)
        )
        self.real = real

    async def open(self, settings: BaseModel, runtime: Runtime) -> Any:
        return None


def fixture_registry(connectors: Iterable[Connector], responder: Responder) -> Registry:
    """A registry in which each of `connectors` is replaced by its fixture stand-in."""
    return Registry(extra={c.name: FixtureConnector(c, responder) for c in connectors})


def used_connectors(loaded: LoadedRecipe, registry: Registry) -> list[Connector]:
    recipe = loaded.recipe
    uses = [s.use for s in [*recipe.steps, *recipe.on_failure] if s.use is not None]
    if recipe.trigger is not None:
        uses.append(recipe.trigger.use)
    return [registry.get(name) for name in sorted({u.split(".", 1)[0] for u in uses})]


class _MockResponder:
    """Answers fixture calls from a test's mocks and records every call."""

    def __init__(self, test_file: TestFile, now: Callable[[], float]) -> None:
        self.file = test_file
        self.now = now  # the fake clock's `now`, for time functions in mocked outputs
        self.calls: list[RecordedCall] = []
        self.problems: list[tuple[YamlPath | None, str]] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.mocks: dict[str, tuple[Mock, YamlPath]] = {}
        self.run = 0

    def begin(self, run: int, layers: Sequence[tuple[Mocks, YamlPath]]) -> None:
        self.run = run
        self.mocks = {}
        for mocks, path in layers:
            for name, mock in mocks.items():
                self.mocks[name] = (mock, (*path, name))

    def problem(self, path: YamlPath | None, message: str) -> None:
        if (path, message) not in self.problems:
            self.problems.append((path, message))

    def pick(self, action: FixtureAction, call: CallContext) -> tuple[Response, YamlPath] | None:
        trigger = call.step == "trigger" and not call.item_key
        step = "trigger" if trigger else base_step(call.step)
        found = self.mocks.get(step) or self.mocks.get(action.use)
        if found is None:
            return None
        mock, path = found
        if isinstance(mock, ByItem):
            answers: Responses | None = mock.by_item.get(call.item_key)
            path = (*path, "by_item", call.item_key)
            if answers is None:
                answers, path = mock.default, (*found[1], "default")
            if answers is None:
                return None
        else:
            answers = mock
        if isinstance(answers, Response):
            return answers, path
        counter = ("trigger", str(self.run)) if trigger else (call.step, call.item_key)
        seen = self.counts.get(counter, 0)
        self.counts[counter] = seen + 1
        index = min(seen, len(answers) - 1)
        return answers[index], (*path, index)

    async def respond(self, action: FixtureAction, input: BaseModel, call: CallContext) -> Any:
        data = input.model_dump(mode="json", by_alias=True)
        record = RecordedCall(
            self.run,
            call.step,
            call.item_key,
            action.use,
            action.effect.value,
            data,
            call.idempotency_key,
            call.attempt,
            at=self.now(),
        )
        self.calls.append(record)
        picked = self.pick(action, call)
        if picked is None:
            if action.effect is not Effect.READ:
                simulated = action.simulate(input, call)
                record.output = simulated.model_dump(mode="json", by_alias=True)
                return simulated
            step = base_step(call.step)
            if call.step == "trigger" and not call.item_key:
                message = f"the trigger ({action.use}) has no mock; add `mocks.trigger`"
            else:
                message = (
                    f"step {step} ({action.use}) has no mock"
                    + (f" for item {call.item_key}" if call.item_key else "")
                    + f"; add `mocks.{step}`"
                )
            return self.fail(record, message, ErrorKind.PERMANENT)
        answer, path = picked
        if answer.error is not None:
            spec = (
                answer.error
                if isinstance(answer.error, MockError)
                else MockError(kind=answer.error)
            )
            message = spec.message or f"mocked {spec.kind.value} error"
            record.outcome, record.error = "error", message
            raise ConnectorError(
                message,
                kind=spec.kind,
                status=spec.status,
                retry_after=spec.retry_after,
                maybe_sent=spec.maybe_sent,
            )
        context = {
            "input": data,
            "call": {
                "item": call.item_key,
                "step": call.step,
                "attempt": call.attempt,
                "key": call.idempotency_key,
            },
            "__now__": self.now(),
        }
        try:
            output = action.Output.model_validate(render_value(answer.output, context))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            message = f"the mocked output does not fit {action.use}: {where}: {first['msg']}"
            self.problem((*path, "output"), message)
            return self.fail(record, message, ErrorKind.PERMANENT)
        except FlowkitError as exc:
            message = f"the mocked output cannot be rendered: {exc}"
            self.problem((*path, "output"), message)
            return self.fail(record, message, ErrorKind.PERMANENT)
        record.output = output.model_dump(mode="json", by_alias=True)
        return output

    def fail(self, record: RecordedCall, message: str, kind: ErrorKind) -> Any:
        record.outcome, record.error = "error", message
        if "has no mock" in message:
            self.problem(None, message)
        raise ConnectorError(message, kind=kind)
