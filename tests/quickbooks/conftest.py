"""Fixtures for the QuickBooks sandbox and connector tests: a live sandbox on loopback, a
dict-backed KeyValueStore and a runtime that records the secrets it is told about."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from flowkit.connectors.base import CallContext, ConnectorError, Runtime
from flowkit.connectors.quickbooks import QuickBooksSettings, connector
from flowkit.connectors.quickbooks.session import QuickBooksSession
from flowkit.sandbox.quickbooks import DEFAULT_CLIENT_SECRET, TOKEN_PATH, QuickBooksSandbox
from flowkit.sandbox.server import ServerHandle, serve_in_thread
from flowkit.testing.connectors import MemoryKV


class RecordingRuntime(Runtime):
    """A Runtime that remembers the secrets registered with it."""

    def __init__(self, kv: MemoryKV) -> None:
        self.secrets: list[str] = []
        super().__init__(connection="qbo", kv=kv, register_secret=self.secrets.append)


@pytest.fixture
def qbo() -> Iterator[tuple[QuickBooksSandbox, ServerHandle]]:
    sandbox = QuickBooksSandbox()
    sandbox.seed(3)
    handle = serve_in_thread(sandbox.app)
    yield sandbox, handle
    handle.stop()


@pytest.fixture
def sandbox(qbo: tuple[QuickBooksSandbox, ServerHandle]) -> QuickBooksSandbox:
    return qbo[0]


@pytest.fixture
def kv() -> MemoryKV:
    return MemoryKV()


@pytest.fixture
def runtime(kv: MemoryKV) -> RecordingRuntime:
    return RecordingRuntime(kv)


@pytest.fixture
def make_settings(
    qbo: tuple[QuickBooksSandbox, ServerHandle],
) -> Callable[..., QuickBooksSettings]:
    sandbox, handle = qbo

    def make(**overrides: Any) -> QuickBooksSettings:
        values: dict[str, Any] = {
            "realm_id": sandbox.realm_id,
            "client_id": sandbox.client_id,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "refresh_token": sandbox.current_refresh_token,
            "base_url": handle.url,
            "token_url": handle.url + TOKEN_PATH,
        }
        values.update(overrides)
        return QuickBooksSettings.model_validate(values)

    return make


@pytest.fixture
async def session(
    make_settings: Callable[..., QuickBooksSettings], runtime: RecordingRuntime
) -> AsyncIterator[QuickBooksSession]:
    opened = await connector.open(make_settings(), runtime)
    yield opened
    await connector.close(opened)


async def _run(session: QuickBooksSession, action: str, key: str = "fk-test-1", **data: Any) -> Any:
    act = connector.actions[action]
    return await act.run(session, act.Input.model_validate(data), CallContext(idempotency_key=key))


@pytest.fixture
def run() -> Callable[..., Any]:
    """`await run(session, action, key=..., **input)` runs one action as the engine would."""
    return _run


@pytest.fixture
def no_secrets(
    sandbox: QuickBooksSandbox, runtime: RecordingRuntime
) -> Callable[[ConnectorError], None]:
    """Assert that neither an error's message nor its hint shows any credential seen so far."""
    seen = [DEFAULT_CLIENT_SECRET, sandbox.current_refresh_token]

    def check(error: ConnectorError) -> None:
        secrets = [*seen, *sandbox.refresh_tokens, *sandbox.access_tokens, *runtime.secrets]
        text = f"{error.message}\n{error.hint or ''}"
        assert secrets
        for secret in secrets:
            assert secret not in text

    return check
