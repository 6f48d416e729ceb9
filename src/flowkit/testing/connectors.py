"""Helpers for testing connector plugins: run one action, check the plugin contract."""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    BaseModel,
)

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    Effect,
    Idempotency,
    Runtime,
)

# -- helpers for connector tests --------------------------------------------------------------


class MemoryKV:
    """A connector key-value store kept in memory (the state store's stand-in in tests)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value


async def call_action(
    connector: Connector,
    action: str,
    input: dict[str, Any],
    *,
    settings: dict[str, Any] | None = None,
    key: str = "fk-test",
    item: str = "",
    attempt: int = 1,
    kv: MemoryKV | None = None,
) -> Any:
    """Run one action of a connector as the engine would: validated settings and input, a
    session opened and closed around the call. Returns the action's output model."""
    if action not in connector.actions:
        known = ", ".join(sorted(connector.actions))
        raise ValueError(f"connector '{connector.name}' has no action '{action}' (known: {known})")
    act = connector.actions[action]
    config = connector.settings.model_validate(settings or {})
    session = await connector.open(config, Runtime(connection=connector.name, kv=kv or MemoryKV()))
    try:
        data = act.Input.model_validate(input)
        call = CallContext(
            idempotency_key=key, recipe="test", step=action, item_key=item, attempt=attempt
        )
        return await act.run(session, data, call)
    finally:
        await connector.close(session)


def check_connector(obj: object) -> list[str]:
    """What keeps `obj` from being a valid connector plugin (empty when it is fine)."""
    from flowkit.connectors.base import API_VERSION

    if isinstance(obj, type) and issubclass(obj, Connector):
        cls = obj
        try:
            obj = cls()  # type: ignore[call-arg]  # a subclass that names itself
        except TypeError as exc:
            return [f"{cls.__name__}() cannot be created without arguments: {exc}"]
    if not isinstance(obj, Connector):
        return [f"{obj!r} is not a flowkit.connectors.base.Connector"]
    problems: list[str] = []
    if obj.api_version != API_VERSION:
        problems.append(f"api_version is {obj.api_version}, this flowkit provides {API_VERSION}")
    if not re.match(r"^[a-z][a-z0-9_]*$", obj.name):
        problems.append(f"name {obj.name!r} is not lowercase letters, digits and _")
    if not (isinstance(obj.settings, type) and issubclass(obj.settings, BaseModel)):
        problems.append("settings is not a pydantic model class")
    if not obj.actions:
        problems.append("it has no actions")
    for name, action in obj.actions.items():
        where = f"action {name!r}"
        if not re.match(r"^[a-z][a-z0-9_]*$", name):
            problems.append(f"{where}: the name is not lowercase letters, digits and _")
        for attr in ("Input", "Output"):
            model = getattr(action, attr, None)
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                problems.append(f"{where}: {attr} is not a pydantic model class")
        if not isinstance(action.effect, Effect):
            problems.append(f"{where}: effect is not an Effect")
        if not isinstance(action.idempotency, Idempotency):
            problems.append(f"{where}: idempotency is not an Idempotency")
        if type(action).run is Action.run:
            problems.append(f"{where}: run() is not implemented")
    return problems
