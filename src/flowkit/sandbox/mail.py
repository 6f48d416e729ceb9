"""A mail catcher: a real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message.

It stores each delivery with its envelope and parsed content (From, To, Subject, Message-ID,
text and HTML parts, attachment names); `unique()` deduplicates by Message-ID, which is how a
retried send with a deterministic Message-ID is recognised as the same email.

Optional authentication: with `username`/`password` the server offers AUTH LOGIN and PLAIN over
plain TCP (`auth_require_tls=False`, this is loopback) and refuses MAIL without it (530). AUTH is
not made mandatory through aiosmtpd's `auth_required`, which warns when TLS is not required.

Fault knobs: `reject_rcpt_next(n)` answers 451 to every RCPT of the next `n` messages;
`drop_after_data_next(n)` stores the next `n` messages, then closes the connection instead of
answering 250 (the client cannot know whether the mail went out).

References: https://aiosmtpd.aio-libs.org/en/latest/ (Controller, handler hooks,
authenticator returning `AuthResult`), RFC 5321 section 4.2.3 (451, 530 reply codes), RFC 4954
(AUTH), RFC 5322 section 3.6.4 (Message-ID).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from flowkit.sandbox.server import free_port

__all__ = ["CaughtMail", "MailCatcher"]


class _QuietDeprecation(logging.Filter):
    """aiosmtpd itself sets the deprecated `Session.login_data` on every successful AUTH and
    logs a warning about it; that noise says nothing about the caller, so it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


_AIOSMTPD_LOG = logging.getLogger("mail.log")
if not any(isinstance(f, _QuietDeprecation) for f in _AIOSMTPD_LOG.filters):
    _AIOSMTPD_LOG.addFilter(_QuietDeprecation())


@dataclass(frozen=True)
class CaughtMail:
    """One message the catcher accepted."""

    mail_from: str
    rcpt_tos: list[str]
    sender: str
    to: list[str]
    subject: str
    message_id: str | None
    text: str | None
    html: str | None
    attachments: list[str]
    auth_user: str | None
    received_at: float
    raw: str

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready view (without the raw source)."""
        data = asdict(self)
        data.pop("raw")
        return data


def parse_message(
    data: bytes, mail_from: str, rcpt_tos: list[str], auth_user: str | None, at: float
) -> CaughtMail:
    """Parse a message source into a `CaughtMail`."""
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    attachments = [part.get_filename() or "" for part in message.iter_attachments()]
    message_id = message.get("Message-ID")
    return CaughtMail(
        mail_from=mail_from,
        rcpt_tos=list(rcpt_tos),
        sender=str(message.get("From", "")),
        to=[addr for _name, addr in getaddresses([str(v) for v in message.get_all("To", [])])],
        subject=str(message.get("Subject", "")),
        message_id=str(message_id).strip() if message_id else None,
        text=text_part.get_content() if text_part is not None else None,
        html=html_part.get_content() if html_part is not None else None,
        attachments=attachments,
        auth_user=auth_user,
        received_at=at,
        raw=data.decode("utf-8", "replace"),
    )


class MailCatcher:
    """An SMTP server that catches mail; `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or 0
        self.username, self.password = username, password
        self.clock = clock
        self.messages: list[CaughtMail] = []
        self.rejected_rcpts = 0
        self.dropped = 0
        self._reject_next = 0
        self._drop_next = 0
        self._rejecting: dict[int, bool] = {}
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MailCatcher:
        """Start listening (on `port`, or a free port when none was given)."""
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        attempts = 1 if self.port else 5
        for attempt in range(attempts):
            port = self.port or free_port()
            controller = Controller(self, hostname=self.host, port=port, **kwargs)
            try:
                controller.start()
            except (OSError, RuntimeError):
                if attempt == attempts - 1:
                    raise
                continue
            self._controller, self.port = controller, port
            break
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test helpers
    def unique(self) -> list[CaughtMail]:
        """Messages deduplicated by Message-ID (first delivery wins; no ID: always kept)."""
        seen: set[str] = set()
        out = []
        for mail in list(self.messages):
            if mail.message_id is not None:
                if mail.message_id in seen:
                    continue
                seen.add(mail.message_id)
            out.append(mail)
        return out

    def duplicates(self) -> dict[str, int]:
        """Message-IDs delivered more than once, with their delivery counts."""
        counts: dict[str, int] = {}
        for mail in list(self.messages):
            if mail.message_id is not None:
                counts[mail.message_id] = counts.get(mail.message_id, 0) + 1
        return {mid: n for mid, n in counts.items() if n > 1}

    def to(self, address: str) -> list[CaughtMail]:
        """Unique messages with `address` among the envelope recipients."""
        wanted = address.lower()
        return [m for m in self.unique() if wanted in (r.lower() for r in m.rcpt_tos)]

    def reject_rcpt_next(self, count: int = 1) -> None:
        """Answer 451 (try again later) to every RCPT of the next `count` messages."""
        with self._lock:
            self._reject_next += count

    def drop_after_data_next(self, count: int = 1) -> None:
        """Store the next `count` messages, then close the connection instead of replying."""
        with self._lock:
            self._drop_next += count

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def summary(self) -> dict[str, int]:
        return {
            "deliveries": len(self.messages),
            "unique_messages": len(self.unique()),
            "rejected_recipients": self.rejected_rcpts,
            "dropped_connections": self.dropped,
        }

    def messages_json(self, *, unique: bool = False) -> list[dict[str, Any]]:
        return [m.as_json() for m in (self.unique() if unique else list(self.messages))]

    def http_app(self) -> web.Application:
        """`GET /messages` (`?unique=1` to deduplicate) and `DELETE /messages` as JSON."""
        app = web.Application()
        app.router.add_get("/messages", self.handle_list)
        app.router.add_delete("/messages", self.handle_clear)
        return app

    async def handle_list(self, request: web.Request) -> web.Response:
        unique = request.query.get("unique", "") not in ("", "0", "false")
        return web.json_response(self.messages_json(unique=unique))

    async def handle_clear(self, _request: web.Request) -> web.Response:
        self.clear()
        return web.json_response({"deleted": True})

    # ------------------------------------------------------------------ aiosmtpd hooks
    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if (
            mechanism in ("LOGIN", "PLAIN")
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == self.username
            and auth_data.password.decode("utf-8", "replace") == self.password
        ):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self, _server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        with self._lock:
            reject = self._reject_next > 0
            if reject:
                self._reject_next -= 1
            self._rejecting[id(session)] = reject
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, _server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self._rejecting.get(id(session)):
            self.rejected_rcpts += 1
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        user = session.auth_data.login.decode() if session.authenticated else None
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        mail = parse_message(data, envelope.mail_from, envelope.rcpt_tos, user, self.clock())
        with self._lock:
            self.messages.append(mail)
            drop = self._drop_next > 0
            if drop:
                self._drop_next -= 1
        if drop and server.transport is not None:
            self.dropped += 1
            server.transport.close()
        return "250 2.0.0 Message accepted for delivery"
