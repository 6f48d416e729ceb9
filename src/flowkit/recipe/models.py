"""Pydantic models of the recipe format, version 1 (see docs/recipes.md).

Every model forbids unknown keys and is frozen: what `validate` accepts is exactly what `run`
executes. Values that may hold `${{ }}` expressions are kept as plain data here; the loader
checks their syntax and references, and the engine renders them per item.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from flowkit.errors import ErrorKind
from flowkit.recipe.durations import DURATION_PATTERN, parse_duration

FORMAT_VERSION = 1
ID_PATTERN = r"^[a-z][a-z0-9_]*$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
USE_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"
EXPRESSION_PATTERN = r"^\s*\$\{\{[\s\S]*\}\}\s*$"


def _duration(value: object) -> float:
    return parse_duration(value)


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(lambda v: v, return_type=float),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "Seconds, or text like '30s', '5m', '2h', '3d', '1w', '1h30m'.",
        }
    ),
]

Expression = Annotated[
    str,
    Field(
        pattern=EXPRESSION_PATTERN,
        description="A single `${{ ... }}` expression.",
    ),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OnError(str, enum.Enum):
    """What happens to an item when a step fails for good (after its retries)."""

    FAIL = "fail"  # the item fails: no further steps; failure hooks run; retried by later runs
    CONTINUE = "continue"  # the step is marked failed, its dependents are skipped, others go on


class Retry(Model):
    """Per-step retry policy. Only the error kinds in `retry_on` are retried."""

    attempts: int = Field(3, ge=1, le=100, description="Total attempts, the first included.")
    backoff: Duration = Field(1.0, description="Delay before the second attempt; doubles after.")
    max_delay: Duration = Field(60.0, description="Cap on any single delay (Retry-After too).")
    deadline: Duration | None = Field(
        None, description="Give up once this much time has passed since the first attempt."
    )
    jitter: bool = Field(True, description="Randomise delays (full jitter) to spread load.")
    retry_on: list[ErrorKind] = Field(
        default_factory=lambda: [ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT],
        description="Error kinds that are retried.",
    )
    unsafe_writes: bool = Field(
        False,
        description="Also retry writes that have no idempotency (may duplicate the effect).",
    )


class Wait(Model):
    """A durable wait: the item is parked in the state store and resumed by a later run."""

    for_: Duration | None = Field(None, alias="for", description="How long to wait.")
    until: str | float | None = Field(
        None,
        description="Wait until this time: an expression giving unix seconds or ISO-8601 text.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_of(self) -> Wait:
        if (self.for_ is None) == (self.until is None):
            raise ValueError("a wait needs exactly one of 'for' or 'until'")
        return self


class Step(Model):
    """One node of an item's step graph: a connector action (`use`) or a durable `wait`."""

    id: str = Field(pattern=ID_PATTERN, description="Unique id, referenced as steps.<id>.")
    name: str | None = Field(None, description="A human label for logs.")
    use: str | None = Field(
        None, pattern=USE_PATTERN, description="connector.action to call, e.g. stripe.list_charges."
    )
    connection: str | None = Field(
        None, description="Which connection to use (default: the one named like the connector)."
    )
    with_: dict[str, Any] = Field(
        default_factory=dict, alias="with", description="The action's inputs; may use ${{ }}."
    )
    wait: Wait | None = None
    needs: list[str] = Field(
        default_factory=list,
        description="Steps that must finish first (references to steps.<id> add more).",
    )
    if_: str | bool | None = Field(
        None, alias="if", description="Run only when this expression is true."
    )
    for_each: str | list[Any] | None = Field(
        None,
        description="Run once per element (available as `each` and `index`); "
        "the output is the list of outputs, in input order.",
    )
    retry: Retry | None = None
    timeout: Duration | None = Field(None, description="Per-attempt time limit.")
    on_error: OnError = OnError.FAIL

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _kind(self) -> Step:
        if (self.use is None) == (self.wait is None):
            raise ValueError("a step needs exactly one of 'use' or 'wait'")
        if self.wait is not None and (self.with_ or self.for_each is not None):
            raise ValueError("a wait step takes no 'with' or 'for_each'")
        return self

    @field_validator("needs")
    @classmethod
    def _unique_needs(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("'needs' lists a step twice")
        return value


class Trigger(Model):
    """Where work items come from: a read action whose output lists items.

    The stored cursor is available as `${{ cursor }}` in `with`; `cursor` renders the next
    cursor from the action's `output`; `key` renders each item's identity from `item`.
    """

    use: str = Field(pattern=USE_PATTERN)
    connection: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    items: Expression = Field(
        "${{ output.items }}", description="Expression over `output` that yields the item list."
    )
    key: Expression = Field(description="Expression over `item` that yields its unique key.")
    cursor: Expression | None = Field(
        None, description="Expression over `output` giving the cursor to store after this run."
    )
    retry: Retry | None = None
    timeout: Duration | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Connection(Model):
    """A named, configured instance of a connector; credentials come from secrets."""

    connector: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]*$", description="Connector name (default: this key)."
    )
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    concurrency: int | None = Field(
        None, ge=1, le=1000, description="Most calls in flight on this connection."
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Secret(Model):
    description: str = ""
    required: bool = True


class Recipe(Model):
    """A recipe file, format version 1."""

    flowkit: Literal[1] = Field(description="Recipe format version.")
    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str = ""
    vars: dict[str, Any] = Field(
        default_factory=dict, description="Variables (`vars.NAME`); override with --var."
    )
    secrets: dict[str, Secret | str | None] = Field(
        default_factory=dict,
        description="Secrets read from the environment (`secrets.NAME`), masked everywhere.",
    )
    connections: dict[str, Connection] = Field(default_factory=dict)
    trigger: Trigger | None = None
    steps: list[Step] = Field(min_length=1)
    on_failure: list[Step] = Field(
        default_factory=list,
        description="Steps run once when an item fails for good (`error` holds the failure).",
    )
    max_item_failures: int = Field(
        3, ge=1, le=1000, description="Runs that may try a failed item before it is left alone."
    )
    concurrency: int | None = Field(None, ge=1, le=1000, description="Items processed at once.")

    @field_validator("connections", "secrets", "vars")
    @classmethod
    def _identifier_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        import re

        for key in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"'{key}' is not a valid name (letters, digits and _)")
        return value

    def step(self, step_id: str) -> Step | None:
        for step in self.steps:
            if step.id == step_id:
                return step
        return None

    def connection_for(self, use: str, explicit: str | None) -> str | None:
        """The connection name a `use:` runs on, or None if the connector needs none."""
        if explicit is not None:
            return explicit
        connector = use.split(".", 1)[0]
        if connector in self.connections:
            return connector
        matches = [
            name for name, conn in self.connections.items() if (conn.connector or name) == connector
        ]
        return matches[0] if len(matches) == 1 else None


def recipe_json_schema() -> dict[str, Any]:
    """JSON Schema (Draft 2020-12) of the recipe format, without connector-specific inputs."""
    schema = Recipe.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://flowkit.dev/schema/recipe-1.json"
    schema["title"] = "flowkit recipe (format 1)"
    return schema
