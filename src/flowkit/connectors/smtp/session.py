"""The `smtp` connector's session and delivery: TLS settings, one SMTP conversation per
message driven step by step (so a failure says whether the body reached the server), and
reply codes as error kinds (RFC 5321 section 4.2)."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowkit.connectors.base import ConnectorError, ErrorKind, Runtime
from flowkit.connectors.smtp.message import _payload
from flowkit.connectors.smtp.models import SmtpSettings, _bare

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


@dataclass
class SmtpSession:
    settings: SmtpSettings
    base: Path
    tls: ssl.SSLContext | None
    debug: Any = lambda _line: None
    _templates: SandboxedEnvironment | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return self.settings.port or DEFAULT_PORTS[self.settings.security]

    def templates(self) -> SandboxedEnvironment:
        if self._templates is None:
            from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
            from jinja2.sandbox import SandboxedEnvironment

            self._templates = SandboxedEnvironment(
                loader=FileSystemLoader(str(self.base)),
                autoescape=select_autoescape(
                    enabled_extensions=("html", "htm", "xml"), default_for_string=False
                ),
                undefined=StrictUndefined,
                keep_trailing_newline=True,
            )
        return self._templates

    def inside(self, path: str, what: str) -> Path:
        """`path` resolved against the recipe's folder; refuse anything outside it."""
        base = self.base.resolve()
        target = (base / Path(path).expanduser()).resolve()
        if not target.is_relative_to(base):
            raise ConnectorError(
                f"smtp: {what} '{path}' is outside the recipe's folder ({base})",
                kind=ErrorKind.VALIDATION,
                hint="keep templates and attachments next to the recipe",
            )
        return target


def _tls_context(settings: SmtpSettings, base: Path) -> ssl.SSLContext | None:
    if settings.security == "none":
        return None
    if not settings.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = None
    if settings.ca_file:
        cafile = str(base / Path(settings.ca_file).expanduser())
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectorError(
            f"smtp: cannot load ca_file '{settings.ca_file}': {exc}", kind=ErrorKind.VALIDATION
        ) from exc


async def open_session(settings: SmtpSettings, runtime: Runtime) -> SmtpSession:
    if settings.password is not None:
        runtime.register_secret(settings.password.get_secret_value())
    base = Path(runtime.base_dir)
    return SmtpSession(
        settings=settings, base=base, tls=_tls_context(settings, base), debug=runtime.debug
    )


def _kind_for(code: int) -> ErrorKind:
    if code in (530, 534, 535, 538):
        return ErrorKind.AUTH
    if 400 <= code < 500:
        return ErrorKind.TRANSIENT
    if code in (501, 553, 555):
        return ErrorKind.VALIDATION
    return ErrorKind.PERMANENT


def _reply_error(code: int, reply: bytes | str, command: str) -> ConnectorError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())
    message = f"SMTP {code} from {command}: {text}" if text else f"SMTP {code} from {command}"
    return ConnectorError(message, kind=_kind_for(code), status=code)


@dataclass
class _Progress:
    step: str = "connect"
    body_sent: bool = False


def _network_error(exc: BaseException, where: str, progress: _Progress) -> ConnectorError:
    unknown = progress.body_sent  # the whole message is on the server; no final reply yet
    tail = (
        "; the message may have been delivered (unknown outcome)"
        if unknown
        else "; nothing was sent"
    )
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(
        exc.__context__, TimeoutError
    ):
        exc = exc.__context__  # smtplib reports a read timeout as a disconnect
    if isinstance(exc, TimeoutError | socket.timeout):
        return ConnectorError(
            f"SMTP: no answer from {where} in time during {progress.step}{tail}",
            kind=ErrorKind.TIMEOUT,
            maybe_sent=unknown,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectorError(
            f"SMTP: the TLS certificate of {where} is not trusted: {exc.verify_message}",
            kind=ErrorKind.PERMANENT,
            hint="set `ca_file` to the server's CA certificate (or `verify_tls: false` in tests)",
        )
    if isinstance(exc, ssl.SSLError):
        return ConnectorError(
            f"SMTP: TLS failed with {where} during {progress.step}: {exc.reason or exc}",
            kind=ErrorKind.PERMANENT,
            hint="check that `security` matches the port (tls: 465, starttls: 587)",
        )
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        reason = "the server closed the connection"
    return ConnectorError(
        f"SMTP: connection to {where} failed during {progress.step}: {reason}{tail}",
        kind=ErrorKind.TRANSIENT,
        maybe_sent=unknown,
    )


def _connect(session: SmtpSession) -> smtplib.SMTP:
    s = session.settings
    if s.security == "tls":
        return smtplib.SMTP_SSL(
            s.host, session.port, s.local_hostname, timeout=s.timeout, context=session.tls
        )
    return smtplib.SMTP(s.host, session.port, s.local_hostname, timeout=s.timeout)


def _converse(
    client: smtplib.SMTP,
    session: SmtpSession,
    msg: EmailMessage,
    recipients: list[str],
    progress: _Progress,
) -> tuple[list[str], dict[str, str]]:
    s = session.settings
    progress.step = "EHLO"
    client.ehlo_or_helo_if_needed()
    if s.security == "starttls":
        progress.step = "STARTTLS"
        if not client.has_extn("starttls"):
            raise ConnectorError(
                f"SMTP: {s.host} does not offer STARTTLS",
                kind=ErrorKind.PERMANENT,
                hint="use `security: tls` for port 465, or `none` for a local relay",
            )
        client.starttls(context=session.tls)  # raises SMTPResponseException unless 220
        client.ehlo()
    if s.username:
        progress.step = "AUTH"
        password = s.password.get_secret_value() if s.password else ""
        try:
            client.login(s.username, password)
        except smtplib.SMTPNotSupportedError:
            raise ConnectorError(
                f"SMTP: {s.host} does not offer AUTH on this connection",
                kind=ErrorKind.AUTH,
                hint="most servers only offer AUTH after STARTTLS: check `security`",
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise _reply_error(exc.smtp_code, exc.smtp_error, "AUTH") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException):
            raise
        except smtplib.SMTPException as exc:  # e.g. no common AUTH mechanism
            raise ConnectorError(
                f"SMTP: AUTH with {s.host} failed: {exc}", kind=ErrorKind.AUTH
            ) from None
    sender = _bare(s.from_address)
    everyone = [sender, *recipients]
    utf8 = any(not addr.isascii() for addr in everyone)
    options: list[str] = []
    if utf8:
        if not client.has_extn("smtputf8"):
            raise ConnectorError(
                f"SMTP: {s.host} cannot take non-ASCII addresses (no SMTPUTF8)",
                kind=ErrorKind.VALIDATION,
            )
        options = ["SMTPUTF8", "BODY=8BITMIME"]
    progress.step = "MAIL FROM"
    code, reply = client.mail(sender, options)
    if code != 250:
        raise _reply_error(code, reply, f"MAIL FROM <{sender}>")
    progress.step = "RCPT TO"
    accepted: list[str] = []
    refused: dict[str, str] = {}
    first_refusal: tuple[int, bytes, str] | None = None
    for rcpt in recipients:
        code, reply = client.rcpt(rcpt)
        if code in (250, 251):
            accepted.append(rcpt)
        else:
            refused[rcpt] = f"{code} {reply.decode('utf-8', 'replace')}"
            first_refusal = first_refusal or (code, reply, f"RCPT TO <{rcpt}>")
    if not accepted:
        assert first_refusal is not None
        code, reply, command = first_refusal
        err = _reply_error(code, reply, command)
        if len(recipients) > 1:
            err.message += f" (all {len(recipients)} recipients refused)"
            err.args = (err.message,)
        raise err
    progress.step = "DATA"
    code, reply = client.docmd("DATA")
    if code != 354:
        raise _reply_error(code, reply, "DATA")
    payload = _payload(msg, utf8)
    progress.step = "sending the message"
    client.send(payload)
    progress.body_sent = True
    progress.step = "waiting for the final reply"
    code, reply = client.getreply()
    if code != 250:
        progress.body_sent = False  # a definitive refusal: the server did not take it
        raise _reply_error(code, reply, "end of DATA")
    return accepted, refused


def deliver(
    session: SmtpSession, msg: EmailMessage, recipients: list[str]
) -> tuple[list[str], dict[str, str]]:
    """Send `msg` to `recipients` over a new connection (blocking; run it in a thread)."""
    s = session.settings
    where = f"{s.host}:{session.port}"
    progress = _Progress()
    client: smtplib.SMTP | None = None
    polite = False  # say QUIT only on a connection that still works
    try:
        client = _connect(session)
        result = _converse(client, session, msg, recipients, progress)
        polite = True
    except ConnectorError:
        polite = True
        raise
    except smtplib.SMTPResponseException as exc:
        # greeting refused (SMTPConnectError), EHLO refused (SMTPHeloError), STARTTLS refused
        raise _reply_error(exc.smtp_code, exc.smtp_error, progress.step) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise _network_error(exc, where, progress) from exc
    finally:
        if client is not None:
            if polite:
                with contextlib.suppress(Exception):
                    client.quit()
            with contextlib.suppress(Exception):
                client.close()
    return result
