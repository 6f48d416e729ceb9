"""The `quickbooks` connector's session: URLs under the realm, OAuth2, Fault classification.

Fault bodies (`{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}`, either letter
case, sometimes with a 200) become `ConnectorError`s that keep QuickBooks' words:
https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from flowkit.connectors.auth import OAuth2RefreshToken
from flowkit.connectors.base import ConnectorError, ErrorKind, Runtime, reveal
from flowkit.connectors.http_client import HttpClient, default_error_message, paginate_pages
from flowkit.connectors.http_options import client_options
from flowkit.connectors.quickbooks.models import (
    PRODUCTION_URL,
    SANDBOX_URL,
    Customer,
    QuickBooksSettings,
)
from flowkit.connectors.quickbooks.wire import entity_of, quote

AUTH_HINT = (
    "Reconnect the app to QuickBooks (Intuit's OAuth 2.0 Playground issues a new refresh token) "
    "and set the connection's `refresh_token` secret to it."
)
_CONFLICT_CODES = {"6240", "6140", "5010"}  # duplicate name, duplicate doc number, stale object


def _faults(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    """(fault type, errors) of a Fault body in either letter case, or ("", [])."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return "", []
    if not isinstance(body, dict):
        return "", []
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, dict):
        return "", []
    errors = fault.get("Error") or fault.get("error") or []
    errors = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    return str(fault.get("type", "")), errors


def _get(error: dict[str, Any], key: str) -> str:
    value = error.get(key, error.get(key.lower()))
    return "" if value is None else str(value)


def fault_message(response: httpx.Response) -> str:
    """QuickBooks' own words: `Message: Detail (code N)` for each error of a Fault."""
    _, errors = _faults(response)
    parts = []
    for error in errors:
        message, detail, code = _get(error, "Message"), _get(error, "Detail"), _get(error, "code")
        text = message if not detail or detail == message else f"{message}: {detail}"
        parts.append(f"{text} (code {code})" if code else text)
    return "; ".join(p for p in parts if p) or default_error_message(response)


def fault_kind(response: httpx.Response, kind: ErrorKind) -> ErrorKind:
    """Refine the status-based kind with the Fault's type and codes."""
    fault_type, errors = _faults(response)
    codes = {_get(e, "code").lstrip("0") for e in errors}
    status = response.status_code
    if status == 429 or "3001" in codes:
        return ErrorKind.RATE_LIMITED
    if status >= 500:
        return ErrorKind.TRANSIENT
    if status in (401, 403) or fault_type.upper().startswith(("AUTHENTICATION", "AUTHORIZATION")):
        return ErrorKind.AUTH
    if codes & _CONFLICT_CODES:
        return ErrorKind.CONFLICT
    if "610" in codes:
        return ErrorKind.NOT_FOUND
    if fault_type == "ValidationFault":
        return ErrorKind.VALIDATION
    return kind


class IntuitRefreshToken(OAuth2RefreshToken):
    """`OAuth2RefreshToken` with one fallback: when Intuit rejects the stored (rotated) refresh
    token with `invalid_grant`, the configured one is tried once. That happens when the user
    reconnected the app and pasted the same secret again, or a sandbox was restarted while
    the state store kept a token it no longer knows."""

    def __init__(self, *args: Any, configured: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._configured = configured
        self._presented = ""
        self._fell_back = False
        self._fallback_ready = False

    async def _grant_params(self) -> dict[str, str]:
        params = await super()._grant_params()
        self._presented = params["refresh_token"]
        return params

    async def _take_token(self, response: httpx.Response) -> None:
        try:
            await super()._take_token(response)
        except ConnectorError:
            rejected = response.status_code == 400 and "invalid_grant" in response.text
            if rejected and not self._fell_back and self._presented != self._configured:
                self._fell_back = self._fallback_ready = True
                self._refresh_token = self._configured
            raise

    def take_fallback(self) -> bool:
        """True once after a stored token was rejected: the caller may repeat its request,
        which was never sent (the token request failed first)."""
        ready, self._fallback_ready = self._fallback_ready, False
        return ready


@dataclass
class QuickBooksSession:
    """One connection's client: builds URLs under the realm and turns Faults into errors."""

    client: HttpClient
    settings: QuickBooksSettings
    auth: IntuitRefreshToken
    _items: dict[str, str] = field(default_factory=dict)  # item name -> Id

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """Send one request; returns the response and its JSON object, or raises."""
        query = {"minorversion": str(self.settings.minor_version), **(params or {})}
        for attempt in range(2):
            try:
                response = await self.client.request(
                    method,
                    path,
                    params=query,
                    json=json_body,
                    content=content,
                    headers=headers,
                    check=False,
                )
                break
            except ConnectorError as exc:
                if attempt == 0 and self.auth.take_fallback():
                    continue  # the stored refresh token was rejected; the request was not sent
                raise with_hint(exc) from None
        if not response.is_success or _faults(response)[1]:  # a Fault may come with a 200
            raise with_hint(self.client.error_for(response))
        body = self.client.json(response)
        if not isinstance(body, dict):
            raise ConnectorError(
                f"unexpected answer from {method} {httpx.URL(path).path}: not a JSON object",
                kind=ErrorKind.PERMANENT,
                maybe_sent=method != "GET",
            )
        return response, body

    async def write(self, path: str, body: Any, key: str, *, entity: str) -> dict[str, Any]:
        _, data = await self.call("POST", path, json_body=body, params={"requestid": key})
        return entity_of(data, entity, path)

    async def query_page(self, statement: str) -> list[dict[str, Any]]:
        _, data = await self.call("GET", "query", params={"query": statement})
        result = data.get("QueryResponse")
        if not isinstance(result, dict):
            raise ConnectorError("QuickBooks answered a query without QueryResponse")
        rows = next((v for k, v in result.items() if isinstance(v, list)), [])
        return [r for r in rows if isinstance(r, dict)]

    async def query_all(self, statement: str, page_size: int, limit: int | None) -> list[Any]:
        async def fetch(page: int) -> tuple[list[Any], bool]:
            start = (page - 1) * page_size + 1
            rows = await self.query_page(
                f"{statement} STARTPOSITION {start} MAXRESULTS {page_size}"
            )
            return rows, len(rows) == page_size

        items: list[Any] = []
        async for row in paginate_pages(fetch):
            items.append(row)
            if limit is not None and len(items) >= limit:
                break
        return items

    async def customers_by(self, condition: str) -> list[Customer]:
        rows = await self.query_page(f"select * from Customer where {condition}")
        customers = [Customer.model_validate(r) for r in rows]
        return sorted(customers, key=lambda c: (len(c.Id), c.Id))  # oldest (lowest Id) first

    async def item_id(self, name: str) -> str:
        if name not in self._items:
            rows = await self.query_page(f"select * from Item where Name = {quote(name)}")
            if not rows:
                raise ConnectorError(
                    f"QuickBooks has no active item named {name!r} for invoice lines",
                    kind=ErrorKind.VALIDATION,
                    hint="Give each line an `item_id`, or set the connection's `default_item` "
                    "to the name of an existing product or service.",
                )
            self._items[name] = str(rows[0]["Id"])
        return self._items[name]


def with_hint(exc: ConnectorError) -> ConnectorError:
    if exc.kind is ErrorKind.AUTH and exc.hint is None:
        exc.hint = AUTH_HINT
    return exc


async def open_session(settings: QuickBooksSettings, runtime: Runtime) -> QuickBooksSession:
    host = settings.base_url or (
        SANDBOX_URL if settings.environment == "sandbox" else PRODUCTION_URL
    )
    configured = reveal(settings.refresh_token)
    fingerprint = hashlib.sha256(configured.encode()).hexdigest()[:16]
    auth = IntuitRefreshToken(
        settings.token_url,
        settings.client_id,
        settings.client_secret,
        settings.refresh_token,
        kv=runtime.kv,
        kv_key=f"quickbooks.{settings.realm_id}.refresh_token.{fingerprint}",
        configured=configured,
    )
    client = HttpClient(
        f"{host.rstrip('/')}/v3/company/{settings.realm_id}/",
        auth=auth,
        headers={"Accept": "application/json"},
        timeout=settings.timeout,
        error_message=fault_message,
        classify=fault_kind,
        runtime=runtime,
        name="quickbooks",
        **client_options(settings, runtime, "quickbooks"),
    )
    return QuickBooksSession(client=client, settings=settings, auth=auth)


async def close_session(session: QuickBooksSession) -> None:
    await session.client.aclose()
