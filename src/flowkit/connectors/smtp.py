"""The `smtp` connector: send templated text and HTML email through an SMTP server.

One action, `send_email`, builds a MIME message (text, HTML or both as multipart/alternative,
plus attachments), opens a connection (plain, STARTTLS or implicit TLS, optional AUTH), sends
it and closes the connection. The standard library's `smtplib` and `email` do the work in a
worker thread; the protocol steps after RCPT are driven one by one so that the connector knows
whether the message body reached the server when something goes wrong.

Idempotency. SMTP itself has no idempotency key. The connector sets a deterministic
`Message-ID` built from the call's idempotency key (`<fk-…@your-from-domain>`), so every attempt
of the same step for the same item carries the same Message-ID, and the action declares
idempotency `header` in that sense: a repeated send is recognisable, and mail stores, ticket
systems and mailbox rules that deduplicate by Message-ID keep one copy. SMTP cannot promise
more than that; what the connector reports is exact:

  * any failure before the message body was sent (connection refused, TLS or AUTH failure,
    MAIL/RCPT/DATA refused) means nothing was delivered: `maybe_sent=False`;
  * a connection that drops or times out after the whole body was sent but before the
    server's final reply is an unknown outcome: `ConnectorError(kind=TRANSIENT or TIMEOUT,
    maybe_sent=True)`. Because of the deterministic Message-ID the engine may send again;
    the recipient may then receive a second copy with the same Message-ID (deduplicated
    downstream), never a different mail;
  * the final reply itself is definitive: 250 = accepted, 4xx/5xx = not accepted.

Error kinds from SMTP reply codes: 4xx (421, 450, 451, 452, 454) → TRANSIENT; 530/534/535/538
(authentication) → AUTH; 501/553/555 (bad address or parameters) → VALIDATION; other 5xx (550
mailbox unavailable, 552, 554) → PERMANENT. The server's own text is kept in the message. When
some recipients are refused and others accepted, the mail is sent to the accepted ones and the
refusals are returned in `refused`; when all are refused the step fails.

Templates: `template` names a Jinja2 file relative to the recipe's folder, rendered in a
`SandboxedEnvironment` with `StrictUndefined` (a missing variable is an error) and
autoescaping for `.html`/`.htm` files, with the `context` input as variables. A template whose
name ends in `.html`/`.htm` provides the HTML part, any other the text part. Attachments named
by `path` must stay inside the recipe's folder.

References: https://docs.python.org/3/library/smtplib.html (SMTP, SMTP_SSL, starttls, login,
mail, rcpt, docmd, getreply, exception classes), https://docs.python.org/3/library/email.message.html
(EmailMessage.set_content / add_alternative / add_attachment),
https://docs.python.org/3/library/email.policy.html (policy.SMTP: CRLF line endings),
https://jinja.palletsprojects.com/en/3.1.x/sandbox/ and
https://jinja.palletsprojects.com/en/3.1.x/api/#autoescaping, RFC 5321 §4.2 (reply codes) and
§4.5.2 (dot-stuffing), RFC 5322 §3.6.4 (Message-ID).
"""

from __future__ import annotations

import contextlib
import email.policy
import email.utils
import hashlib
import mimetypes
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

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
    to_thread,
)

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

__all__ = ["SmtpSettings", "connector", "make_message_id"]

DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
_HTML_SUFFIXES = (".html", ".htm")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def _check_address(value: str, *, several: bool = False) -> str:
    """Refuse anything but `name@domain` / `Name <name@domain>` (comma-separated if several)."""
    if "\r" in value or "\n" in value:
        raise ValueError("an address may not contain a line break")
    parsed = email.utils.getaddresses([value])
    bad = not parsed or (len(parsed) > 1 and not several)
    for _name, addr in parsed:
        local, at, domain = addr.rpartition("@")
        if not (at and local and domain) or any(c.isspace() for c in addr):
            bad = True
    if bad:
        raise ValueError(f"'{value}' is not an email address (name@domain or Name <name@domain>)")
    return value


def _addresses(value: str | list[str] | None) -> list[str]:
    """Header-form addresses; a single string may hold several, separated by commas."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    out: list[str] = []
    for item in items:
        for name, addr in email.utils.getaddresses([item]):
            out.append(email.utils.formataddr((name, addr)) if name else addr)
    return out


def _bare(address: str) -> str:
    return email.utils.parseaddr(address)[1]


def make_message_id(idempotency_key: str, from_address: str) -> str:
    """The deterministic Message-ID for a call: `<key@from-domain>` (RFC 5322 msg-id)."""
    local = _ID_UNSAFE.sub("-", idempotency_key).strip(".")
    if not local:
        local = "fk-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = _bare(from_address).rpartition("@")[2]
    if not _DOMAIN.fullmatch(domain):
        domain = "flowkit.local"
    return f"<{local}@{domain}>"


class SmtpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="SMTP server host name.", min_length=1)
    port: int | None = Field(
        None, ge=1, le=65535, description="Default: 25 (none), 587 (starttls), 465 (tls)."
    )
    security: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="Plain, STARTTLS upgrade, or implicit TLS from the start."
    )
    username: str | None = Field(None, description="AUTH user name; no AUTH when empty.")
    password: SecretStr | None = Field(None, description="AUTH password.")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for each network step.")
    from_address: str = Field(description="Envelope sender and From address.")
    from_name: str | None = Field(None, description="Display name in the From header.")
    verify_tls: bool = Field(True, description="Verify the server's TLS certificate.")
    ca_file: str | None = Field(
        None, description="PEM file of CA certificates to trust (relative to the recipe)."
    )
    local_hostname: str | None = Field(
        None, description="Name sent in EHLO; default: this machine's fully qualified name."
    )

    @field_validator("from_address")
    @classmethod
    def _from_is_address(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("from_name", "local_hostname")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("may not contain a line break")
        return value


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


async def _open(settings: SmtpSettings, runtime: Runtime) -> SmtpSession:
    if settings.password is not None:
        runtime.register_secret(settings.password.get_secret_value())
    base = Path(runtime.base_dir)
    return SmtpSession(
        settings=settings, base=base, tls=_tls_context(settings, base), debug=runtime.debug
    )


# --- input and output -------------------------------------------------------------------------


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str | None = Field(
        None, description="Name shown to the recipient; default: the file's name."
    )
    content: str | None = Field(None, description="The attachment's text.")
    path: str | None = Field(None, description="A file inside the recipe's folder.")
    content_type: str | None = Field(
        None, description="MIME type; default: guessed from the file name."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        if (self.content is None) == (self.path is None):
            raise ValueError("give exactly one of `content` or `path`")
        if self.content is not None and not self.filename:
            raise ValueError("`filename` is required with `content`")
        if self.filename and any(c in self.filename for c in "\r\n/\\"):
            raise ValueError("`filename` may not contain line breaks or slashes")
        if self.content_type and not re.fullmatch(r"[\w.+-]+/[\w.+-]+", self.content_type):
            raise ValueError(f"`content_type` '{self.content_type}' is not a MIME type")
        return self


class SendInput(Input):
    to: str | list[str] = Field(description="Recipient address(es).")
    cc: str | list[str] = Field(default_factory=list, description="Carbon-copy address(es).")
    bcc: str | list[str] = Field(
        default_factory=list, description="Blind-copy address(es): not shown in the headers."
    )
    reply_to: str | None = Field(None, description="Reply-To address.")
    subject: str = Field(description="Subject line.")
    text: str | None = Field(None, description="Plain-text body.")
    html: str | None = Field(None, description="HTML body.")
    template: str | None = Field(
        None,
        description="Jinja2 template file (relative to the recipe) rendered with `context`; "
        "`.html`/`.htm` gives the HTML body (autoescaped), anything else the text body.",
    )
    context: dict[str, Any] = Field(default_factory=dict, description="Variables for `template`.")
    attachments: list[Attachment] = Field(default_factory=list, description="Files to attach.")

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _valid_addresses(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            _check_address(item, several=True)
        return value

    @field_validator("reply_to")
    @classmethod
    def _valid_reply_to(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value)

    @field_validator("subject")
    @classmethod
    def _one_line_subject(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("the subject may not contain a line break")
        return value

    @model_validator(mode="after")
    def _has_body(self) -> SendInput:
        if not _addresses(self.to):
            raise ValueError("`to` needs at least one address")
        if self.text is None and self.html is None and self.template is None:
            raise ValueError("give a body: `text`, `html` or `template`")
        if self.template is not None:
            is_html = self.template.lower().endswith(_HTML_SUFFIXES)
            if is_html and self.html is not None:
                raise ValueError("an HTML `template` and `html` both give the HTML body")
            if not is_html and self.text is not None:
                raise ValueError("a text `template` and `text` both give the text body")
        return self


class SendOutput(Output):
    message_id: str = Field(description="The message's Message-ID (deterministic per step).")
    accepted: list[str] = Field(description="Recipients the server accepted.")
    refused: dict[str, str] = Field(
        description="Recipients the server refused, with its reply (`550 …`)."
    )


# --- building the message ---------------------------------------------------------------------


def _render(session: SmtpSession, name: str, context: dict[str, Any]) -> str:
    from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError

    target = session.inside(name, "template")
    relative = target.relative_to(session.base.resolve()).as_posix()
    try:
        return session.templates().get_template(relative).render(**context)
    except TemplateNotFound:
        raise ConnectorError(
            f"smtp: template '{name}' not found in {session.base}", kind=ErrorKind.VALIDATION
        ) from None
    except TemplateSyntaxError as exc:
        raise ConnectorError(
            f"smtp: template {name}:{exc.lineno}: {exc.message}", kind=ErrorKind.VALIDATION
        ) from exc
    except TemplateError as exc:  # undefined variables, sandbox security errors
        raise ConnectorError(f"smtp: template {name}: {exc}", kind=ErrorKind.VALIDATION) from exc


def _attachment_bytes(session: SmtpSession, att: Attachment) -> tuple[bytes, str]:
    if att.content is not None:
        return att.content.encode("utf-8"), att.filename or "attachment.txt"
    assert att.path is not None
    target = session.inside(att.path, "attachment")
    try:
        return target.read_bytes(), att.filename or target.name
    except OSError as exc:
        raise ConnectorError(
            f"smtp: cannot read attachment '{att.path}': {exc.strerror or exc}",
            kind=ErrorKind.VALIDATION,
        ) from exc


def build_message(session: SmtpSession, input: SendInput, message_id: str) -> EmailMessage:
    """The MIME message for `input` (no network); raises ConnectorError(VALIDATION)."""
    settings = session.settings
    text, html = input.text, input.html
    if input.template is not None:
        rendered = _render(session, input.template, dict(input.context))
        if input.template.lower().endswith(_HTML_SUFFIXES):
            html = rendered
        else:
            text = rendered
    msg = EmailMessage(policy=email.policy.SMTP)
    sender = settings.from_address
    msg["From"] = (
        email.utils.formataddr((settings.from_name, sender)) if settings.from_name else sender
    )
    msg["To"] = ", ".join(_addresses(input.to))
    if cc := _addresses(input.cc):
        msg["Cc"] = ", ".join(cc)
    if input.reply_to:
        msg["Reply-To"] = input.reply_to
    msg["Subject"] = input.subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = message_id
    if text is not None and html is not None:
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(text or "")
    for att in input.attachments:
        data, filename = _attachment_bytes(session, att)
        ctype = (
            att.content_type
            or mimetypes.guess_type(filename)[0]
            or ("text/plain" if att.content is not None else "application/octet-stream")
        )
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def _payload(msg: EmailMessage, utf8: bool) -> bytes:
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    data = msg.as_bytes(policy=policy)
    data = re.sub(rb"(?m)^\.", b"..", data)  # dot-stuffing, RFC 5321 section 4.5.2
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


# --- talking to the server --------------------------------------------------------------------


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


class SendEmail(Action[SendInput, SendOutput]):
    name = "send_email"
    description = "Send one email (text, HTML or both, optional template and attachments)."
    effect = Effect.NOTIFY
    idempotency = Idempotency.HEADER
    Input = SendInput
    Output = SendOutput

    async def run(self, session: SmtpSession, input: SendInput, call: CallContext) -> SendOutput:
        message_id = make_message_id(call.idempotency_key, session.settings.from_address)
        msg = await to_thread(build_message, session, input, message_id)
        recipients = list(
            dict.fromkeys(_bare(a) for a in [*_addresses(input.to), *_addresses(input.cc)])
        )
        for addr in _addresses(input.bcc):
            if _bare(addr) not in recipients:
                recipients.append(_bare(addr))
        session.debug(
            f"smtp: sending {message_id} to {len(recipients)} recipient(s) via "
            f"{session.settings.host}:{session.port} ({session.settings.security})"
        )
        accepted, refused = await to_thread(deliver, session, msg, recipients)
        return SendOutput(message_id=message_id, accepted=accepted, refused=refused)


connector = Connector(
    "smtp",
    description="Send email through an SMTP server (STARTTLS/TLS, AUTH, templates, attachments).",
    settings=SmtpSettings,
    actions=[SendEmail()],
    open=_open,
    docs_url="https://docs.python.org/3/library/smtplib.html",
)
