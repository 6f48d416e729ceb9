"""Fixtures for the built-in connector tests: a runtime rooted in tmp_path, an scriptable SMTP
server (aiosmtpd on 127.0.0.1) with optional STARTTLS, implicit TLS and AUTH, and a
self-signed certificate made with the `openssl` command line."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from flowkit.connectors.base import CallContext, Runtime
from flowkit.sandbox.server import free_port
from flowkit.testing.connectors import MemoryKV


class RecordingRuntime(Runtime):
    """A Runtime rooted in a folder that remembers registered secrets and debug lines."""

    def __init__(self, base_dir: Path) -> None:
        self.secrets: list[str] = []
        self.lines: list[str] = []
        super().__init__(
            connection="test",
            kv=MemoryKV(),
            register_secret=self.secrets.append,
            debug=self.lines.append,
            base_dir=str(base_dir),
        )


@pytest.fixture
def runtime(tmp_path: Path) -> RecordingRuntime:
    return RecordingRuntime(tmp_path)


def _call(key: str = "fk-0123456789abcdef", attempt: int = 1) -> CallContext:
    return CallContext(idempotency_key=key, recipe="r", step="s", item_key="i", attempt=attempt)


@pytest.fixture
def call() -> Callable[..., CallContext]:
    """`call(key=..., attempt=...)` builds the CallContext an engine would pass."""
    return _call


# --- SMTP -------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class ScriptedHandler:
    """aiosmtpd handler: records messages; replies can be scripted per test."""

    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply line
    data_reply: str | None = None  # reply to the end of DATA instead of 250
    drop_after_data: bool = False  # close the connection instead of answering
    hang_after_data: bool = False  # never answer (client timeout)
    release: asyncio.Event | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if self.data_reply is not None:
            return self.data_reply
        message = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, raw))
        if self.drop_after_data:
            server.transport.close()
        if self.hang_after_data:
            self.release = asyncio.Event()
            await self.release.wait()
        return "250 2.0.0 queued"


@dataclass
class MailServer:
    host: str
    port: int
    handler: ScriptedHandler
    controller: Controller


USERS = {"shop": "s3cret-pass"}


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        user = auth_data.login.decode()
        if USERS.get(user) == auth_data.password.decode():
            return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., MailServer]]:
    """Start aiosmtpd servers: `smtp_server(tls=..., starttls=..., auth=...)`."""
    started: list[MailServer] = []

    def start(
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        auth: bool = False,
    ) -> MailServer:
        handler = ScriptedHandler()
        kwargs: dict[str, Any] = {}
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if implicit_tls is not None:
            kwargs.update(ssl_context=implicit_tls)
        if auth:
            kwargs.update(authenticator=_authenticate)
            # over implicit TLS aiosmtpd cannot tell the connection is encrypted
            kwargs.update(auth_require_tls=starttls is not None)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        server = MailServer("127.0.0.1", port, handler, controller)
        started.append(server)
        return server

    yield start
    for server in started:
        release = server.handler.release
        if release is not None:
            server.controller.loop.call_soon_threadsafe(release.set)
        server.controller.stop()
