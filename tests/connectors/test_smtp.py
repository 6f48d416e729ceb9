"""The smtp connector against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flowkit.connectors.base import CallContext, ConnectorError, ErrorKind
from flowkit.connectors.smtp import SendInput, SmtpSettings, connector, make_message_id
from flowkit.sandbox.mail import MailCatcher
from flowkit.sandbox.server import free_port

send_email = connector.actions["send_email"]


def settings(server: Any, **extra: Any) -> SmtpSettings:
    values = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "from_address": "shop@example.org",
        "from_name": "The Shop",
        "timeout": 5,
    }
    values.update(extra)
    return SmtpSettings.model_validate(values)


async def send(runtime: Any, config: SmtpSettings, call: CallContext, **fields: Any) -> Any:
    session = await connector.open(config, runtime)
    try:
        return await send_email.run(session, SendInput.model_validate(fields), call)
    finally:
        await connector.close(session)


async def test_plain_text_mail_reaches_every_recipient_without_bcc_header(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    out = await send(
        runtime,
        settings(server),
        call("fk-aaaa"),
        to="Ann Buyer <ann@example.com>",
        cc=["cc@example.com"],
        bcc="audit@example.org",
        reply_to="help@example.org",
        subject="Your invoice INV-7",
        text="Hello Ann,\n.leading dot survives\nthanks",
    )
    assert out.accepted == ["ann@example.com", "cc@example.com", "audit@example.org"]
    assert out.refused == {}
    assert out.message_id == "<fk-aaaa@example.org>"
    (got,) = server.handler.messages
    assert got.mail_from == "shop@example.org"
    assert got.rcpt_tos == ["ann@example.com", "cc@example.com", "audit@example.org"]
    msg = got.message
    assert msg["From"] == "The Shop <shop@example.org>"
    assert msg["To"] == "Ann Buyer <ann@example.com>"
    assert msg["Cc"] == "cc@example.com"
    assert msg["Bcc"] is None
    assert msg["Reply-To"] == "help@example.org"
    assert msg["Subject"] == "Your invoice INV-7"
    assert msg["Message-ID"] == out.message_id
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == "Hello Ann,\n.leading dot survives\nthanks\n"


async def test_message_id_is_deterministic_per_idempotency_key(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    config = settings(server)
    fields = {"to": "ann@example.com", "subject": "hi", "text": "x"}
    first = await send(runtime, config, call("fk-1111"), **fields)
    again = await send(runtime, config, call("fk-1111", attempt=2), **fields)
    other = await send(runtime, config, call("fk-2222"), **fields)
    assert first.message_id == again.message_id == "<fk-1111@example.org>"
    assert other.message_id != first.message_id
    ids = [m.message["Message-ID"] for m in server.handler.messages]
    assert ids == [first.message_id, first.message_id, other.message_id]


def test_message_id_sanitises_key_and_falls_back_to_flowkit_local() -> None:
    assert make_message_id("fk-abc", "Shop <s@shop.example>") == "<fk-abc@shop.example>"
    assert make_message_id("a b<c>", "s@shop.example") == "<a-b-c-@shop.example>"
    assert make_message_id("fk-abc", "s@[127.0.0.1]") == "<fk-abc@flowkit.local>"
    assert make_message_id("...", "s@x.org").startswith("<fk-")


async def test_text_and_html_make_multipart_alternative(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    await send(
        runtime,
        settings(server),
        call(),
        to="ann@example.com",
        subject="Grüße",
        text="plain body",
        html="<p>html body</p>",
    )
    msg = server.handler.messages[0].message
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "Grüße"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert parts == {"text/plain": "plain body\n", "text/html": "<p>html body</p>\n"}


async def test_html_template_is_sandboxed_autoescaped_and_rendered_with_context(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext], tmp_path: Path
) -> None:
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "review.html").write_text(
        "<p>Hi {{ name }}, order {{ order.id }}: {{ items | join(', ') }}</p>\n"
    )
    server = smtp_server()
    await send(
        runtime,
        settings(server),
        call(),
        to="ann@example.com",
        subject="How was it?",
        text="Please review order 7",
        template="mail/review.html",
        context={"name": "<Ann & Co>", "order": {"id": 7}, "items": ["mug", "tea"]},
    )
    msg = server.handler.messages[0].message
    assert msg.get_content_type() == "multipart/alternative"
    html = msg.get_body(("html",))
    assert html is not None
    assert html.get_content() == "<p>Hi &lt;Ann &amp; Co&gt;, order 7: mug, tea</p>\n"
    text = msg.get_body(("plain",))
    assert text is not None and text.get_content() == "Please review order 7\n"


async def test_text_template_is_not_escaped(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext], tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("Dear {{ name }},\nyour total is {{ total }}.\n")
    server = smtp_server()
    await send(
        runtime,
        settings(server),
        call(),
        to="ann@example.com",
        subject="s",
        template="note.txt",
        context={"name": "Ann & Co", "total": "9.50"},
    )
    msg = server.handler.messages[0].message
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == "Dear Ann & Co,\nyour total is 9.50.\n"


@pytest.mark.parametrize(
    ("template", "context", "fragment"),
    [
        ("t.html", {}, "'name' is undefined"),
        ("broken.html", {"name": "x"}, "broken.html:2:"),
        ("t.html", {"name": "x", "f": "{{ x.__class__ }}"}, None),
        ("../outside.html", {}, "outside the recipe's folder"),
        ("missing.html", {}, "not found"),
        ("sandbox.html", {"name": "x"}, "unsafe"),
    ],
)
async def test_template_problems_are_validation_errors_and_nothing_is_sent(
    smtp_server: Callable[..., Any],
    runtime: Any,
    call: Callable[..., CallContext],
    tmp_path: Path,
    template: str,
    context: dict[str, Any],
    fragment: str | None,
) -> None:
    (tmp_path / "t.html").write_text("<b>{{ name }}</b>")
    (tmp_path / "broken.html").write_text("ok\n{% if %}\n")
    (tmp_path / "sandbox.html").write_text("{{ name.__class__.__mro__ }}")
    (tmp_path.parent / "outside.html").write_text("secret")
    server = smtp_server()
    if fragment is None:  # context strings are data: never evaluated as template code
        await send(
            runtime, settings(server), call(), to="a@x.org", subject="s",
            template=template, context=context,
        )  # fmt: skip
        assert server.handler.messages[0].message.get_content() == "<b>x</b>\n"
        return
    with pytest.raises(ConnectorError) as caught:
        await send(
            runtime, settings(server), call(), to="a@x.org", subject="s",
            template=template, context=context,
        )  # fmt: skip
    assert caught.value.kind is ErrorKind.VALIDATION
    assert fragment in str(caught.value)
    assert not caught.value.maybe_sent
    assert server.handler.messages == []


async def test_attachments_from_text_and_from_files_inside_the_recipe_folder(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext], tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "invoice.pdf").write_bytes(b"%PDF-1.4 fake\x00\xff")
    server = smtp_server()
    await send(
        runtime,
        settings(server),
        call(),
        to="ann@example.com",
        subject="Invoice",
        text="attached",
        html="<p>attached</p>",
        attachments=[
            {"filename": "lines.csv", "content": "sku,qty\nA,1\n"},
            {"path": "docs/invoice.pdf"},
            {"path": "docs/invoice.pdf", "filename": "renamed.bin", "content_type": "x-a/b"},
        ],
    )
    msg = server.handler.messages[0].message
    assert msg.get_content_type() == "multipart/mixed"
    body = msg.get_body(("html", "plain"))
    assert body is not None and body.get_content_type() == "text/html"
    found = {
        a.get_filename(): (a.get_content_type(), a.get_payload(decode=True))
        for a in msg.iter_attachments()
    }
    assert found == {
        "lines.csv": ("text/csv", b"sku,qty\nA,1\n"),
        "invoice.pdf": ("application/pdf", b"%PDF-1.4 fake\x00\xff"),
        "renamed.bin": ("x-a/b", b"%PDF-1.4 fake\x00\xff"),
    }


async def test_attachment_path_escaping_the_recipe_folder_is_refused(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext], tmp_path: Path
) -> None:
    (tmp_path.parent / "passwd").write_text("root")
    (tmp_path / "link").symlink_to(tmp_path.parent / "passwd")
    server = smtp_server()
    for path in ["../passwd", str(tmp_path.parent / "passwd"), "link"]:
        with pytest.raises(ConnectorError, match="outside the recipe's folder") as caught:
            await send(
                runtime, settings(server), call(), to="a@x.org", subject="s", text="t",
                attachments=[{"path": path}],
            )  # fmt: skip
        assert caught.value.kind is ErrorKind.VALIDATION
    assert server.handler.messages == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"to": "not an address", "subject": "s", "text": "t"}, "is not an email address"),
        ({"to": [], "subject": "s", "text": "t"}, "`to` needs at least one address"),
        ({"to": "a@x.org", "subject": "s"}, "give a body"),
        ({"to": "a@x.org", "subject": "a\r\nBcc: evil@x.org", "text": "t"}, "line break"),
        ({"to": "a@x.org\nBcc: e@x.org", "subject": "s", "text": "t"}, "line break"),
        ({"to": "a@x.org", "subject": "s", "html": "x", "template": "t.html"}, "both give"),
        ({"to": "a@x.org", "subject": "s", "text": "t", "attachments": [{"content": "x"}]},
         "`filename` is required"),
        ({"to": "a@x.org", "subject": "s", "text": "t",
          "attachments": [{"filename": "a", "content": "x", "path": "y"}]}, "exactly one"),
        ({"to": "a@x.org", "subject": "s", "text": "t", "priority": 1}, "Extra inputs"),
    ],
)  # fmt: skip
def test_input_model_rejects_bad_input_offline(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SendInput.model_validate(fields)


def test_several_addresses_in_one_string_are_accepted() -> None:
    value = SendInput.model_validate({"to": "a@x.org, Bob <b@y.org>", "subject": "s", "text": "t"})
    assert value.to == "a@x.org, Bob <b@y.org>"


async def test_rcpt_550_is_permanent_and_keeps_the_server_text(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    server.handler.rcpt_replies["gone@example.com"] = (
        "550 5.1.1 <gone@example.com>: mailbox unavailable"
    )
    with pytest.raises(ConnectorError) as caught:
        await send(runtime, settings(server), call(), to="gone@example.com", subject="s", text="t")
    err = caught.value
    assert err.kind is ErrorKind.PERMANENT
    assert err.status == 550
    assert not err.maybe_sent
    assert str(err) == (
        "SMTP 550 from RCPT TO <gone@example.com>: 5.1.1 <gone@example.com>: mailbox unavailable"
    )


async def test_partly_refused_recipients_are_reported_and_the_rest_get_the_mail(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    server.handler.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    out = await send(
        runtime, settings(server), call(), to=["ann@example.com", "gone@example.com"],
        subject="s", text="t",
    )  # fmt: skip
    assert out.accepted == ["ann@example.com"]
    assert out.refused == {"gone@example.com": "550 5.1.1 no such user"}
    assert server.handler.messages[0].rcpt_tos == ["ann@example.com"]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("451 4.3.0 Temporary local problem, try later", ErrorKind.TRANSIENT),
        ("421 4.4.2 closing connection", ErrorKind.TRANSIENT),
        ("452 4.3.1 Insufficient system storage", ErrorKind.TRANSIENT),
        ("554 5.7.1 Message rejected as spam", ErrorKind.PERMANENT),
        ("552 5.3.4 Message too big", ErrorKind.PERMANENT),
    ],
)
async def test_final_reply_codes_are_classified_and_definitive(
    smtp_server: Callable[..., Any],
    runtime: Any,
    call: Callable[..., CallContext],
    reply: str,
    kind: ErrorKind,
) -> None:
    server = smtp_server()
    server.handler.data_reply = reply
    with pytest.raises(ConnectorError) as caught:
        await send(runtime, settings(server), call(), to="a@example.com", subject="s", text="t")
    err = caught.value
    assert err.kind is kind
    assert err.status == int(reply[:3])
    assert err.maybe_sent is False  # the server answered: it did not take the message
    assert str(err) == f"SMTP {reply[:3]} from end of DATA: {reply[4:]}"


async def test_rcpt_451_for_every_recipient_is_transient(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    server.handler.rcpt_replies.update(
        {"a@example.com": "451 4.3.0 greylisted", "b@example.com": "550 5.1.1 unknown"}
    )
    with pytest.raises(ConnectorError) as caught:
        await send(
            runtime, settings(server), call(), to=["a@example.com", "b@example.com"],
            subject="s", text="t",
        )  # fmt: skip
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert "(all 2 recipients refused)" in str(caught.value)
    assert server.handler.messages == []


async def test_connection_dropped_after_data_is_an_unknown_outcome(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    server.handler.drop_after_data = True
    with pytest.raises(ConnectorError) as caught:
        await send(runtime, settings(server), call("fk-drop"), to="a@x.org", subject="s", text="t")
    err = caught.value
    assert err.kind is ErrorKind.TRANSIENT
    assert err.maybe_sent is True
    assert "may have been delivered" in str(err)
    # the server did get the whole message, with the deterministic Message-ID for dedup
    assert server.handler.messages[0].message["Message-ID"] == "<fk-drop@example.org>"


async def test_timeout_waiting_for_the_final_reply_is_an_unknown_outcome(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    server.handler.hang_after_data = True
    with pytest.raises(ConnectorError) as caught:
        await send(
            runtime, settings(server, timeout=0.3), call(), to="a@x.org", subject="s", text="t"
        )
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert caught.value.maybe_sent is True
    assert len(server.handler.messages) == 1


async def test_connection_refused_is_transient_and_nothing_was_sent(
    runtime: Any, call: Callable[..., CallContext]
) -> None:
    config = SmtpSettings(
        host="127.0.0.1", port=free_port(), security="none", from_address="s@x.org"
    )
    with pytest.raises(ConnectorError) as caught:
        await send(runtime, config, call(), to="a@x.org", subject="s", text="t")
    err = caught.value
    assert err.kind is ErrorKind.TRANSIENT
    assert err.maybe_sent is False
    assert "during connect" in str(err) and "nothing was sent" in str(err)


async def test_starttls_with_auth_verifies_the_certificate(
    smtp_server: Callable[..., Any],
    runtime: Any,
    call: Callable[..., CallContext],
    certificate: Any,
) -> None:
    server = smtp_server(starttls=certificate.server_context(), auth=True)
    config = settings(
        server,
        security="starttls",
        username="shop",
        password="s3cret-pass",
        ca_file=str(certificate.cert),
    )
    out = await send(runtime, config, call(), to="a@example.com", subject="tls", text="t")
    assert out.accepted == ["a@example.com"]
    assert runtime.secrets == ["s3cret-pass"]
    assert "s3cret-pass" not in repr(config)


async def test_untrusted_certificate_is_a_permanent_error_with_a_hint(
    smtp_server: Callable[..., Any],
    runtime: Any,
    call: Callable[..., CallContext],
    certificate: Any,
) -> None:
    server = smtp_server(starttls=certificate.server_context())
    with pytest.raises(ConnectorError) as caught:
        await send(
            runtime, settings(server, security="starttls"), call(), to="a@x.org",
            subject="s", text="t",
        )  # fmt: skip
    assert caught.value.kind is ErrorKind.PERMANENT
    assert "not trusted" in str(caught.value)
    assert caught.value.hint is not None and "ca_file" in caught.value.hint
    assert server.handler.messages == []


async def test_wrong_password_is_an_auth_error(
    smtp_server: Callable[..., Any],
    runtime: Any,
    call: Callable[..., CallContext],
    certificate: Any,
) -> None:
    server = smtp_server(starttls=certificate.server_context(), auth=True)
    config = settings(
        server, security="starttls", username="shop", password="wrong-pass",
        ca_file=str(certificate.cert),
    )  # fmt: skip
    with pytest.raises(ConnectorError) as caught:
        await send(runtime, config, call(), to="a@x.org", subject="s", text="t")
    assert caught.value.kind is ErrorKind.AUTH
    assert caught.value.status == 535
    assert str(caught.value).startswith("SMTP 535 from AUTH:")
    assert server.handler.messages == []


async def test_implicit_tls_with_auth(
    smtp_server: Callable[..., Any],
    runtime: Any,
    call: Callable[..., CallContext],
    certificate: Any,
) -> None:
    server = smtp_server(implicit_tls=certificate.server_context(), auth=True)
    config = settings(
        server, security="tls", username="shop", password="s3cret-pass",
        ca_file=str(certificate.cert),
    )  # fmt: skip
    out = await send(runtime, config, call(), to="a@example.com", subject="tls", text="t")
    assert out.accepted == ["a@example.com"]
    assert server.handler.messages[0].message["Subject"] == "tls"


async def test_starttls_against_a_server_without_it_is_refused_before_sending(
    smtp_server: Callable[..., Any], runtime: Any, call: Callable[..., CallContext]
) -> None:
    server = smtp_server()
    with pytest.raises(ConnectorError, match="does not offer STARTTLS") as caught:
        await send(
            runtime, settings(server, security="starttls"), call(), to="a@x.org",
            subject="s", text="t",
        )  # fmt: skip
    assert caught.value.kind is ErrorKind.PERMANENT
    assert server.handler.messages == []


async def test_against_the_sandbox_mail_catcher_with_auth(
    runtime: Any, call: Callable[..., CallContext]
) -> None:
    with MailCatcher(username="shop", password="catcher-pass") as catcher:
        config = SmtpSettings(
            host=catcher.host, port=catcher.port, security="none", username="shop",
            password="catcher-pass", from_address="shop@example.org",
        )  # fmt: skip
        out = await send(runtime, config, call("fk-sbx"), to="c@example.com", subject="s", text="t")
        assert [m.message_id for m in catcher.messages] == [out.message_id]


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="is not an email address"):
        SmtpSettings(host="h", from_address="nobody")
    with pytest.raises(ValidationError, match="Input should be 'none', 'starttls' or 'tls'"):
        SmtpSettings.model_validate({"host": "h", "from_address": "a@b.c", "security": "ssl"})
    assert SmtpSettings(host="h", from_address="a@b.c").security == "starttls"
