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

Layout: `models` (settings, inputs, outputs, addresses, the Message-ID), `message` (the MIME
message), `session` (TLS, the SMTP conversation, reply codes), this module (the action and
the `connector` object).

References: https://docs.python.org/3/library/smtplib.html (SMTP, SMTP_SSL, starttls, login,
mail, rcpt, docmd, getreply, exception classes), https://docs.python.org/3/library/email.message.html
(EmailMessage.set_content / add_alternative / add_attachment),
https://docs.python.org/3/library/email.policy.html (policy.SMTP: CRLF line endings),
https://jinja.palletsprojects.com/en/3.1.x/sandbox/ and
https://jinja.palletsprojects.com/en/3.1.x/api/#autoescaping, RFC 5321 §4.2 (reply codes) and
§4.5.2 (dot-stuffing), RFC 5322 §3.6.4 (Message-ID).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    Effect,
    Idempotency,
    Runtime,
    to_thread,
)
from flowkit.connectors.smtp.models import (
    SendInput,
    SendOutput,
    SmtpSettings,
    _addresses,
    _bare,
    make_message_id,
)

# The SMTP session (smtplib, ssl, sockets) and the MIME building (email.message) are imported
# when a connection opens or a message is sent, not with the models: `flowkit validate`
# needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    from flowkit.connectors.smtp.session import SmtpSession

__all__ = ["SmtpSettings", "connector", "make_message_id"]


async def _open(settings: SmtpSettings, runtime: Runtime) -> SmtpSession:
    from flowkit.connectors.smtp.session import open_session

    return await open_session(settings, runtime)


class SendEmail(Action[SendInput, SendOutput]):
    name = "send_email"
    description = "Send one email (text, HTML or both, optional template and attachments)."
    effect = Effect.NOTIFY
    idempotency = Idempotency.HEADER
    Input = SendInput
    Output = SendOutput

    async def run(self, session: SmtpSession, input: SendInput, call: CallContext) -> SendOutput:
        from flowkit.connectors.smtp.message import build_message
        from flowkit.connectors.smtp.session import deliver

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
