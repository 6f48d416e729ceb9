"""Fixtures for the HTTP layer and the http, stripe and slack connector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web

from flowkit.connectors.base import Runtime
from flowkit.sandbox.server import ServerHandle, serve_in_thread


class DictKV:
    """A KeyValueStore backed by a dict (what the state store's kv table does durably)."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = dict(initial or {})
        self.writes: list[tuple[str, str]] = []

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value
        self.writes.append((key, value))


class RecordingRuntime(Runtime):
    """A Runtime that remembers registered secrets and debug lines."""

    def __init__(self, kv: DictKV | None = None) -> None:
        self.secrets: list[str] = []
        self.lines: list[str] = []
        super().__init__(
            connection="test",
            kv=kv or DictKV(),
            register_secret=self.secrets.append,
            debug=self.lines.append,
        )


@pytest.fixture
def kv() -> DictKV:
    return DictKV()


@pytest.fixture
def runtime(kv: DictKV) -> RecordingRuntime:
    return RecordingRuntime(kv)


@pytest.fixture
def serve() -> Iterator[object]:
    """`serve(app)` starts an aiohttp app on 127.0.0.1 for the test and stops it after."""
    handles: list[ServerHandle] = []

    def start(app: web.Application) -> ServerHandle:
        handle = serve_in_thread(app)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def make_kv() -> type[DictKV]:
    """The dict-backed KeyValueStore class, for tests that need several or pre-filled ones."""
    return DictKV
