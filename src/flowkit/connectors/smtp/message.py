"""Building the `smtp` connector's MIME message: Jinja2 templates, bodies, attachments, and
the DATA payload (CRLF, dot-stuffing). No network."""

from __future__ import annotations

import email.policy
import email.utils
import mimetypes
import re
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from flowkit.connectors.base import ConnectorError, ErrorKind
from flowkit.connectors.smtp.models import _HTML_SUFFIXES, Attachment, SendInput, _addresses

if TYPE_CHECKING:
    from flowkit.connectors.smtp.session import SmtpSession


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
