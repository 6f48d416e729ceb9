"""Settings, inputs and outputs of the `smtp` connector (pydantic models), with the address
checks they use and the deterministic Message-ID; no network and no `smtplib` here, so
`flowkit validate` imports this module cheaply."""

from __future__ import annotations

import email.utils
import hashlib
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from flowkit.connectors.base import Input, Output

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
