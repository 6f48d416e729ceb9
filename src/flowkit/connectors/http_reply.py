"""Reading HTTP answers: the default classification and message of an error response, the
lower-case header dict and JSON body of a response, and `Reply`, what `HttpClient.fetch`
returns. These five are importable from `flowkit.connectors.http_client` too; `raw_fields`
and `fields_dict` are the HTTP layer's own helpers."""

from __future__ import annotations

import json as jsonlib
from typing import Any, NamedTuple

import httpx

from flowkit.errors import ErrorKind

__all__ = [
    "Reply",
    "default_error_message",
    "fields_dict",
    "header_dict",
    "json_body",
    "kind_for_status",
    "raw_fields",
]


def kind_for_status(status: int) -> ErrorKind:
    """The default classification of a non-2xx status."""
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status >= 500:
        return ErrorKind.TRANSIENT
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 409:
        return ErrorKind.CONFLICT
    if status in (400, 422):
        return ErrorKind.VALIDATION
    return ErrorKind.PERMANENT


def _first_text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, dict):
        for key in ("message", "error_description", "detail", "description", "error", "title"):
            found = _first_text(value.get(key))
            if found:
                return found
    if isinstance(value, list) and value:
        return _first_text(value[0])
    return None


def default_error_message(response: httpx.Response) -> str:
    """The API's own message from a JSON error body (`message`, `error.message`,
    `errors[0].message`, `detail`, ...), else the start of the body text."""
    try:
        body = json_body(response.content)
    except ValueError:
        body = None
    if body is not None:
        found = _first_text(body)
        if not found and isinstance(body, dict):
            found = _first_text(body.get("errors"))
        if found:
            return found
    text = " ".join(response.text.split())
    return text or response.reason_phrase


def raw_fields(headers: httpx.Headers) -> list[tuple[bytes, bytes, bytes]]:
    """httpx's own normalised form of headers: (name, lower-case name, value) as bytes. Handing
    it to a new `httpx.Headers` saves encoding the same default headers for every request."""
    return headers._list


_BOM = b"\xef\xbb\xbf"


def json_body(content: bytes) -> Any:
    """`json.loads(content)`: UTF-8 (what RFC 8259 requires) decoded directly, which skips
    the encoding detection `json.loads` runs on bytes; anything else goes through it."""
    if not content.startswith(_BOM):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return jsonlib.loads(text)
    return jsonlib.loads(content)


def header_dict(response: httpx.Response) -> dict[str, str]:
    """Lower-case header names to values, repeated ones joined by ", ": what
    `dict(response.headers.items())` gives, at a quarter of the cost for ASCII headers."""
    found = fields_dict(raw_fields(response.headers))
    return dict(response.headers.items()) if found is None else found


def fields_dict(fields: list[tuple[bytes, bytes, bytes]]) -> dict[str, str] | None:
    """`header_dict` of raw fields; None when a value is not ASCII (httpx then decides)."""
    found: dict[str, str] = {}
    try:
        for _name, lower, value in fields:
            key = lower.decode("ascii")
            text = value.decode("ascii")
            found[key] = f"{found[key]}, {text}" if key in found else text
    except UnicodeDecodeError:
        return None
    return found


class Reply(NamedTuple):
    """A 2xx answer from `HttpClient.fetch`."""

    status_code: int
    headers: dict[str, str]
    """Lower-case names; repeated ones joined by ", " (as `header_dict`)."""
    content: bytes
    """The body, decoded from any Content-Encoding."""
    method: str
    url: httpx.URL

    @property
    def text(self) -> str:
        """The body as text, decoded as httpx's `Response.text` would (charset, else UTF-8)."""
        return httpx.Response(200, headers=self.headers, content=self.content).text

    @classmethod
    def of(cls, response: httpx.Response) -> Reply:
        request = response.request
        return cls(
            response.status_code, header_dict(response), response.content, request.method,
            request.url,
        )  # fmt: skip
