"""The connector SDK: the whole contract between flowkit and a connector plugin.

A connector is a named plugin that declares
  * `settings`: a pydantic model of its connection settings (secret fields typed `SecretStr`),
  * `actions`: named operations, each with a typed `Input` and `Output` model, an `effect`
    (read / write / notify) and an `idempotency` mode,
  * `open()`: build a session (e.g. a pooled HTTP client) from validated settings, once per run.

Rules a connector follows (the engine owns policy):
  * it never retries, sleeps or prints; it raises `ConnectorError` with an `ErrorKind` and keeps
    the API's own message; `maybe_sent=True` when a request may have reached the server;
  * it sends `call.idempotency_key` to APIs that honour one (Stripe `Idempotency-Key`,
    QuickBooks `requestid`, SMTP `Message-ID`) — the key is stable for (recipe, item, step);
  * list actions used as triggers return an output with an `items` list and accept a `cursor`
    input; they follow pagination themselves and guard against a cursor that does not advance;
  * it never imports the engine, typer or rich.

Plugins register an object that satisfies `Connector` under the entry-point group
`flowkit.connectors`. `API_VERSION` changes when this contract breaks; flowkit refuses a
plugin built for another major version.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr

from flowkit.errors import ConnectorError, ErrorKind

__all__ = [
    "API_VERSION",
    "Action",
    "CallContext",
    "Change",
    "Connector",
    "ConnectorError",
    "Effect",
    "ErrorKind",
    "Idempotency",
    "Input",
    "KeyValueStore",
    "NoSettings",
    "Output",
    "Runtime",
    "no_debug",
    "reveal",
    "simulate_output",
    "to_thread",
]

API_VERSION = 1


class Effect(str, enum.Enum):
    """What an action does to the outside world; dry run and retries depend on it."""

    READ = "read"
    WRITE = "write"
    NOTIFY = "notify"


class Idempotency(str, enum.Enum):
    """How a write can be repeated safely.

    HEADER: the API honours a key we send (Stripe `Idempotency-Key`, QuickBooks `requestid`,
            deterministic `Message-ID` for mail deduplicated downstream).
    NATURAL: repeating the same request yields the same state (PUT of a stock level).
    NONE: repeating may duplicate the effect (SMTP without dedup, a webhook post).
    """

    HEADER = "header"
    NATURAL = "natural"
    NONE = "none"


class Input(BaseModel):
    """Base for action inputs: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(BaseModel):
    """Base for action outputs: extra fields from the API are kept (allow)."""

    model_config = ConfigDict(extra="allow")


class NoSettings(BaseModel):
    """Settings model for connectors that need no connection settings."""

    model_config = ConfigDict(extra="forbid")


class KeyValueStore(Protocol):
    """Durable per-connection storage (e.g. a rotated OAuth2 refresh token)."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str) -> None: ...


def no_debug(_line: str) -> None:
    """The debug callback when debug output is off (connectors may skip formatting lines)."""
    return None


@dataclass
class Runtime:
    """What a connector session may use from its host (handed to `Connector.open`).

    `kv` persists across runs in the state store; `register_secret` adds a value (e.g. a freshly
    issued access token) to the masking set so no output ever shows it; `debug` writes a debug
    log line (already masked by the host); `connection` is the connection's name in the recipe.
    """

    connection: str
    kv: KeyValueStore
    register_secret: Callable[[str], None] = lambda _value: None
    debug: Callable[[str], None] = no_debug
    base_dir: str = "."  # the recipe's directory: relative file paths resolve against it


class CallContext(NamedTuple):
    """Per-call facts the engine hands to an action (immutable; built once per call, so a
    named tuple rather than a frozen dataclass, which takes twice as long to build)."""

    idempotency_key: str  # stable for (recipe, item key, step id): business identity, not run
    recipe: str = ""
    step: str = ""
    item_key: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class Change:
    """One line of an update-style plan: `SKU-0042 stock 7 -> 5`."""

    subject: str
    field: str
    old: Any
    new: Any

    def format(self) -> str:
        return f"{self.subject} {self.field} {self.old} -> {self.new}"


T = TypeVar("T")
InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)


class Action(Generic[InT, OutT]):
    """One operation of a connector. Subclass it, set the class attributes, implement `run`.

    `run(session, input, call)` performs the call with the session built by `Connector.open`.
    `simulate` returns the dry-run output (default: a placeholder valid for `Output`).
    `plan` (optional) returns the changes an update-style action would make, for dry runs;
    it may only read.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    effect: ClassVar[Effect] = Effect.WRITE  # undeclared counts as write (fail closed)
    idempotency: ClassVar[Idempotency] = Idempotency.NONE
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]

    async def run(self, session: Any, input: InT, call: CallContext) -> OutT:
        raise NotImplementedError

    def simulate(self, input: InT, call: CallContext) -> OutT:
        return simulate_output(self.Output, call.idempotency_key)  # type: ignore[return-value]

    async def plan(self, session: Any, input: InT, call: CallContext) -> list[Change] | None:
        return None

    @property
    def retry_safe(self) -> bool:
        """Whether the engine may repeat this action automatically after an unknown outcome."""
        return self.effect is Effect.READ or self.idempotency is not Idempotency.NONE


class Connector:
    """A connector plugin. Subclass it or instantiate it with keyword arguments."""

    api_version: int = API_VERSION

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        settings: type[BaseModel] = NoSettings,
        actions: list[Action[Any, Any]] | None = None,
        open: Callable[[Any, Runtime], Awaitable[Any]] | None = None,
        close: Callable[[Any], Awaitable[None]] | None = None,
        docs_url: str = "",
    ) -> None:
        self.name = name
        self.description = description
        self.settings = settings
        self.actions: Mapping[str, Action[Any, Any]] = {a.name: a for a in (actions or [])}
        self._open = open
        self._close = close
        self.docs_url = docs_url

    async def open(self, settings: BaseModel, runtime: Runtime) -> Any:
        """Build a session from validated settings; default: the settings themselves."""
        if self._open is None:
            return settings
        return await self._open(settings, runtime)

    async def close(self, session: Any) -> None:
        if self._close is not None:
            await self._close(session)


async def to_thread(fn: Callable[..., T], /, *args: Any) -> T:
    """`asyncio.to_thread(fn, *args)` for a connector's blocking work (files, SQLite, SMTP),
    with asyncio imported at the first call: a connector module stays light to import, since
    `flowkit validate` imports it for its models only."""
    import asyncio

    return await asyncio.to_thread(fn, *args)


def parse_time(value: str, what: str) -> datetime:
    """An ISO 8601 time from an API or a stored cursor (`Z` accepted; no zone means UTC); a
    VALIDATION error naming `what` when it is not one."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConnectorError(
            f"{what} {value!r} is not an ISO 8601 time (e.g. 2025-01-31T12:00:00Z)",
            kind=ErrorKind.VALIDATION,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def newest_time(values: Iterable[str | None], what: str, previous: str | None) -> str | None:
    """The next cursor of a list read by modification time: the latest of `values` (ISO 8601
    texts as the API gave them; None skipped), or `previous` when none is later than it."""
    stamps = [(parse_time(v, what), v) for v in values if v]
    if not stamps:
        return previous
    moment, text = max(stamps)
    if previous and parse_time(previous, "cursor") >= moment:
        return previous
    return text


def reveal(value: SecretStr | str) -> str:
    """The plain text of a secret given as `SecretStr` or `str`."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


# Copied for every digest: `hashlib.sha256()` looks the digest up in OpenSSL 3 on every call
# (5 us on the CI machine), a copy of a ready object does not (3.5 us). Same digest.
_SHA256 = hashlib.sha256()


def short_digest(text: str) -> str:
    """The first 32 hex digits of the SHA-256 of `text` (UTF-8)."""
    digest = _SHA256.copy()
    digest.update(text.encode())
    return digest.hexdigest()[:32]


def idempotency_key(recipe: str, item_key: str, step: str) -> str:
    """The stable key for one effect: a hash of its business identity, not of the run.

    The value must never change between versions: a run after an upgrade must send a write
    that an older run may have sent under the same key (`test_idempotency_key_is_stable`)."""
    return "fk-" + short_digest(f"{recipe}\x1f{item_key}\x1f{step}")


def simulate_output(model: type[BaseModel], seed: str) -> BaseModel:
    """A value valid for `model`, built from its field types, for dry runs.

    Strings become `dryrun-<seed>`-style placeholders, numbers 0, bools False, lists empty,
    nested models recursively; defaults are used where a field has one.
    """
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required():
            continue
        values[name] = _placeholder(info.annotation, f"dryrun-{seed[-8:]}")
    return model.model_validate(values)


def _placeholder(annotation: Any, text: str) -> Any:
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return None if len(non_none) < len(args) else _placeholder(non_none[0], text)
    if origin is typing.Literal:
        return args[0]
    if origin in (list, tuple, set, frozenset):
        return []
    if origin is dict:
        return {}
    if origin is typing.Annotated:
        return _placeholder(args[0], text)
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return simulate_output(annotation, text).model_dump()
        if issubclass(annotation, bool):
            return False
        if issubclass(annotation, int | float):
            return 0
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation)).value
    return text
