"""Connector sessions for one run: opened lazily per connection, closed at the end.

Settings are rendered from the recipe's `connections:` (expressions over `secrets`, `vars`,
`env`), validated against the connector's settings model, and every secret field's value is
registered for masking before anything can print it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from flowkit import redact
from flowkit.connectors.base import Action, Connector, Runtime, no_debug
from flowkit.connectors.registry import Registry
from flowkit.errors import PluginError, UsageError
from flowkit.expressions import render_value
from flowkit.recipe.models import Recipe
from flowkit.state.base import StateStore


class StoreKV:
    """A connector's durable key-value space inside the state store."""

    def __init__(self, store: StateStore, namespace: str) -> None:
        self._store = store
        self._namespace = namespace

    async def get(self, key: str) -> str | None:
        return await self._store.kv_get(self._namespace, key)

    async def set(self, key: str, value: str) -> None:
        redact.register(value)
        await self._store.kv_set(self._namespace, key, value)


@dataclass
class Bound:
    """An action bound to its connector, session and connection limit."""

    use: str
    connection: str
    connector: Connector
    action: Action[Any, Any]
    session: Any
    limit: asyncio.Semaphore | None


def _register_secret_fields(model: BaseModel) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            redact.register(value.get_secret_value())
        elif isinstance(value, BaseModel):
            _register_secret_fields(value)


class Connections:
    def __init__(
        self,
        recipe: Recipe,
        registry: Registry,
        store: StateStore,
        context: Mapping[str, Any],
        base_dir: Path,
        debug: Any = None,
    ) -> None:
        self._recipe = recipe
        self._registry = registry
        self._store = store
        self._context = context
        self._base_dir = base_dir
        self._debug = debug
        self._sessions: dict[str, tuple[Connector, Any]] = {}
        self._limits: dict[str, asyncio.Semaphore | None] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._bound: dict[tuple[str, str | None], Bound] = {}

    async def bind(self, use: str, explicit: str | None) -> Bound:
        cache_key = (use, explicit)
        bound = self._bound.get(cache_key)
        if bound is not None:
            return bound
        connector, action = self._registry.action(use)
        name = self._recipe.connection_for(use, explicit) or connector.name
        session = await self._session(name, connector)
        bound = Bound(use, name, connector, action, session, self._limits.get(name))
        self._bound[cache_key] = bound
        return bound

    async def _session(self, name: str, connector: Connector) -> Any:
        if name in self._sessions:
            return self._sessions[name][1]
        lock = self._opening.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self._sessions:
                return self._sessions[name][1]
            conn = self._recipe.connections.get(name)
            raw = render_value(dict(conn.with_), self._context) if conn else {}
            if conn is not None and conn.connector and conn.connector != connector.name:
                raise PluginError(
                    f"connection '{name}' uses connector '{conn.connector}', not '{connector.name}'"
                )
            try:
                settings = connector.settings.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise UsageError(
                    f"connection '{name}': {where}: {first['msg']}",
                    hint="check the connection's `with:` settings and the secrets they use",
                ) from None
            _register_secret_fields(settings)
            runtime = Runtime(
                connection=name,
                kv=StoreKV(self._store, f"{self._recipe.name}:{name}"),
                register_secret=redact.register,
                debug=self._debug or no_debug,
                base_dir=str(self._base_dir),
            )
            session = await connector.open(settings, runtime)
            self._sessions[name] = (connector, session)
            limit = conn.concurrency if conn else None
            self._limits[name] = asyncio.Semaphore(limit) if limit else None
            return session

    async def close(self) -> None:
        for connector, session in self._sessions.values():
            # closing must never hide the run's outcome
            with contextlib.suppress(Exception):
                await connector.close(session)
        self._sessions.clear()
        self._bound.clear()
