"""flowkit-greet: an example third-party connector plugin.

`greet.hello` (read) returns one greeting per name after an optional cursor, so it can be a
recipe trigger; `greet.record` (write) appends a line to a log file inside the recipe's folder
and honours the idempotency key: a key already in the log is not written again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
    Input,
    Output,
    Runtime,
)


class GreetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = Field("Hello", description="The word put before each name.")
    log_file: str = Field("greetings.log", description="Log file, relative to the recipe.")


@dataclass
class GreetSession:
    greeting: str
    log: Path


async def _open(settings: GreetSettings, runtime: Runtime) -> GreetSession:
    return GreetSession(settings.greeting, Path(runtime.base_dir) / settings.log_file)


class Greeting(BaseModel):
    id: str = Field(description="`greet-<position>`.")
    name: str = Field(description="The name greeted.")
    text: str = Field(description="The greeting.")


class HelloInput(Input):
    names: list[str] = Field(default_factory=lambda: ["world"], description="Names to greet.")
    cursor: int | None = Field(None, ge=0, description="Skip the names up to this position.")


class HelloOutput(Output):
    items: list[Greeting] = Field(description="One greeting per name after the cursor.")
    cursor: int | None = Field(description="Position of the last name returned.")


class Hello(Action[HelloInput, HelloOutput]):
    name = "hello"
    description = "Greet each name (a trigger: returns items and a cursor)."
    effect = Effect.READ
    Input = HelloInput
    Output = HelloOutput

    async def run(self, session: GreetSession, input: HelloInput, call: CallContext) -> HelloOutput:
        start = input.cursor or 0
        items = [
            Greeting(id=f"greet-{pos}", name=name, text=f"{session.greeting}, {name}!")
            for pos, name in enumerate(input.names, start=1)
            if pos > start
        ]
        return HelloOutput(items=items, cursor=len(input.names) if items else input.cursor)


class RecordInput(Input):
    text: str = Field(description="The line to record.", min_length=1)


class RecordOutput(Output):
    line: int = Field(description="Line number of the record in the log.")
    duplicate: bool = Field(description="True when this idempotency key was already recorded.")


def _record(path: Path, key: str, text: str) -> tuple[int, bool]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for number, line in enumerate(lines, start=1):
        if line.split("\t", 1)[0] == key:
            return number, True
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{key}\t{' '.join(text.split())}\n")
    return len(lines) + 1, False


class Record(Action[RecordInput, RecordOutput]):
    name = "record"
    description = "Append a line to the log file, once per idempotency key."
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = RecordInput
    Output = RecordOutput

    async def run(
        self, session: GreetSession, input: RecordInput, call: CallContext
    ) -> RecordOutput:
        try:
            line, duplicate = await asyncio.to_thread(
                _record, session.log, call.idempotency_key, input.text
            )
        except OSError as exc:
            raise ConnectorError(
                f"greet: cannot write {session.log}: {exc.strerror}", kind=ErrorKind.PERMANENT
            ) from exc
        return RecordOutput(line=line, duplicate=duplicate)


connector: Any = Connector(
    "greet",
    description="Example plugin: greetings to read, a log to write.",
    settings=GreetSettings,
    actions=[Hello(), Record()],
    open=_open,
)
