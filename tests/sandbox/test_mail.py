"""The mail catcher, driven by the standard library's smtplib."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

from flowkit.sandbox.mail import MailCatcher
from flowkit.sandbox.server import free_port, serve_in_thread


def invoice_mail(message_id: str = "<inv-1.ch_1@flowkit.local>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Ada Lovelace <ada@example.com>"
    message["Subject"] = "Your invoice 1001"
    message["Message-ID"] = message_id
    message.set_content("Thanks for your order.")
    message.add_alternative("<p>Thanks for your <b>order</b>.</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf",
                           filename="invoice-1001.pdf")  # fmt: skip
    return message


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    with MailCatcher() as mail:
        yield mail


@pytest.fixture
def auth_catcher() -> Iterator[MailCatcher]:
    with MailCatcher(username="shop", password="s3cret") as mail:
        yield mail


def send(mail: MailCatcher, message: EmailMessage, login: tuple[str, str] | None = None) -> None:
    with smtplib.SMTP(mail.host, mail.port, timeout=5) as client:
        if login:
            client.login(*login)
        client.send_message(message)


def test_plain_delivery_is_parsed(catcher: MailCatcher) -> None:
    send(catcher, invoice_mail())
    [mail] = catcher.messages
    assert mail.mail_from == "shop@example.com"
    assert mail.rcpt_tos == ["ada@example.com"]
    assert mail.to == ["ada@example.com"]
    assert mail.sender == "Shop <shop@example.com>"
    assert mail.subject == "Your invoice 1001"
    assert mail.message_id == "<inv-1.ch_1@flowkit.local>"
    assert mail.text is not None and mail.text.strip() == "Thanks for your order."
    assert mail.html is not None and "<b>order</b>" in mail.html
    assert mail.attachments == ["invoice-1001.pdf"]
    assert mail.auth_user is None
    assert catcher.to("ADA@example.com") == [mail]


def test_auth_login_and_plain_are_accepted(auth_catcher: MailCatcher) -> None:
    send(auth_catcher, invoice_mail(), login=("shop", "s3cret"))
    with smtplib.SMTP(auth_catcher.host, auth_catcher.port, timeout=5) as client:
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"]
        client.user, client.password = "shop", "s3cret"
        client.auth("PLAIN", client.auth_plain)
        client.send_message(invoice_mail("<second@flowkit.local>"))
    assert [m.auth_user for m in auth_catcher.messages] == ["shop", "shop"]


def test_wrong_password_is_refused_without_hanging(auth_catcher: MailCatcher) -> None:
    with smtplib.SMTP(auth_catcher.host, auth_catcher.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login("shop", "wrong")
        assert info.value.smtp_code == 535


def test_mail_without_auth_is_refused_when_auth_is_configured(auth_catcher: MailCatcher) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(auth_catcher, invoice_mail())
    assert info.value.smtp_code == 530
    assert auth_catcher.messages == []


def test_451_knob_rejects_recipients_of_the_next_message(catcher: MailCatcher) -> None:
    catcher.reject_rcpt_next(1)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(catcher, invoice_mail())
    assert info.value.recipients["ada@example.com"][0] == 451
    assert catcher.messages == []
    send(catcher, invoice_mail())
    assert len(catcher.messages) == 1
    assert catcher.summary()["rejected_recipients"] == 1


def test_drop_after_data_stores_the_mail_but_the_client_sees_a_disconnect(
    catcher: MailCatcher,
) -> None:
    catcher.drop_after_data_next(1)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(catcher, invoice_mail())
    assert len(catcher.messages) == 1  # it did arrive: the outcome was unknown to the sender
    send(catcher, invoice_mail())  # the retry reuses the deterministic Message-ID
    assert len(catcher.messages) == 2
    assert [m.message_id for m in catcher.unique()] == ["<inv-1.ch_1@flowkit.local>"]
    assert catcher.duplicates() == {"<inv-1.ch_1@flowkit.local>": 2}
    assert catcher.summary() == {
        "deliveries": 2,
        "unique_messages": 1,
        "rejected_recipients": 0,
        "dropped_connections": 1,
    }


def test_http_view_lists_messages_as_json(catcher: MailCatcher, http: httpx.Client) -> None:
    send(catcher, invoice_mail())
    send(catcher, invoice_mail())
    send(catcher, invoice_mail("<other@flowkit.local>"))
    with serve_in_thread(catcher.http_app()) as handle:
        every = http.get(handle.url + "/messages").json()
        unique = http.get(handle.url + "/messages", params={"unique": "1"}).json()
        assert http.delete(handle.url + "/messages").json() == {"deleted": True}
    assert len(every) == 3
    assert [m["message_id"] for m in unique] == [
        "<inv-1.ch_1@flowkit.local>",
        "<other@flowkit.local>",
    ]
    assert unique[0]["attachments"] == ["invoice-1001.pdf"]
    assert "raw" not in unique[0]
    assert catcher.messages == []


def test_explicit_port_is_used() -> None:
    port = free_port()
    with MailCatcher(port=port) as mail:
        assert mail.port == port
        send(mail, invoice_mail())
        assert len(mail.messages) == 1
