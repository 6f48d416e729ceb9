"""Authentication for HTTP connectors, as `httpx.Auth` flows.

Every secret (configured or issued by a token endpoint) is handed to `register_secret` so the
host masks it everywhere. `HttpClient` wires `register_secret` to `Runtime.register_secret`
when it is given an auth object from this module (`FlowkitAuth.attach`).

OAuth2 flows follow RFC 6749: the client-credentials grant (section 4.4) and the refresh-token
grant (section 6), with client authentication by HTTP Basic (section 2.3.1) or in the body.
Token requests go through the same transport as the API calls (they are yielded from the
auth flow), so tests can serve them from a `MockTransport` or a local server.
A provider may rotate the refresh token on every refresh: QuickBooks Online says to always use
"the latest refresh_token returned to you from the previous request"
(https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/faq
and .../authentication-and-authorization/oauth-2.0). `OAuth2RefreshToken` persists the newest
one in the connection's `KeyValueStore`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from flowkit.connectors.base import KeyValueStore, reveal
from flowkit.errors import ConnectorError, ErrorKind

__all__ = [
    "TOKEN_REQUEST",
    "ApiKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "FlowkitAuth",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "QueryParamsAuth",
    "reveal",
]

Secret = SecretStr | str

# Marks a request the auth flow made for itself (a token request) in `request.extensions`.
TOKEN_REQUEST = "flowkit.token_request"

# Refresh a token this many seconds before the provider says it expires.
_EXPIRY_MARGIN = 60.0


def _noop(_value: str) -> None:
    return None


class FlowkitAuth(httpx.Auth):
    """Base of flowkit's auth flows: knows its secrets and whom to tell about new ones."""

    def __init__(self, register_secret: Callable[[str], None] = _noop) -> None:
        self._registrars: list[Callable[[str], None]] = [register_secret]
        self._secrets: list[str] = []

    def attach(self, register_secret: Callable[[str], None]) -> None:
        """Also report secrets (known now and issued later) to `register_secret`."""
        self._registrars.append(register_secret)
        for value in self._secrets:
            register_secret(value)

    def _secret(self, value: str) -> str:
        if value and value not in self._secrets:
            self._secrets.append(value)
            for register in self._registrars:
                register(value)
        return value

    def secret_values(self) -> list[str]:
        """Every secret this auth has seen so far."""
        return list(self._secrets)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("flowkit auth flows are async only; use HttpClient")
        yield request  # pragma: no cover - makes this a generator


class ApiKeyAuth(FlowkitAuth):
    """A static key in a header (`X-Api-Key: ...`)."""

    def __init__(
        self, header: str, value: Secret, register_secret: Callable[[str], None] = _noop
    ) -> None:
        super().__init__(register_secret)
        self.header = header
        self._value = self._secret(reveal(value))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers[self.header] = self._value
        yield request


class QueryParamsAuth(FlowkitAuth):
    """Secret query parameters on every request (WooCommerce's `consumer_key` and
    `consumer_secret` over HTTPS when the server drops the Authorization header)."""

    def __init__(
        self, params: dict[str, Secret], register_secret: Callable[[str], None] = _noop
    ) -> None:
        super().__init__(register_secret)
        self._params = {name: self._secret(reveal(value)) for name, value in params.items()}

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.url = request.url.copy_merge_params(self._params)
        yield request


class BasicAuth(FlowkitAuth):
    """HTTP Basic (RFC 7617); Stripe uses it with the secret key as user name."""

    def __init__(
        self,
        username: Secret,
        password: Secret = "",
        register_secret: Callable[[str], None] = _noop,
    ) -> None:
        super().__init__(register_secret)
        user = reveal(username)
        pwd = reveal(password)
        self._secret(pwd)
        token = base64.b64encode(f"{user}:{pwd}".encode()).decode("ascii")
        self._header = "Basic " + self._secret(token)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self._header
        yield request


class BearerAuth(FlowkitAuth):
    """A static bearer token (RFC 6750)."""

    def __init__(self, token: Secret, register_secret: Callable[[str], None] = _noop) -> None:
        super().__init__(register_secret)
        self._token = self._secret(reveal(token))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class _OAuth2(FlowkitAuth):
    """Shared machinery: cached access token, one refresh at a time, one replay on 401."""

    grant_name = "oauth2"

    def __init__(
        self,
        token_url: str,
        client_id: Secret,
        client_secret: Secret,
        *,
        client_auth: Literal["basic", "body"] = "basic",
        register_secret: Callable[[str], None] = _noop,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(register_secret)
        self.token_url = token_url
        self._client_id = reveal(client_id)
        self._client_secret = self._secret(reveal(client_secret))
        self._client_auth = client_auth
        self._clock = clock
        self._access_token: str | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()

    # subclasses ------------------------------------------------------------------------
    async def _grant_params(self) -> dict[str, str]:
        raise NotImplementedError

    async def _accept_token(self, payload: dict[str, Any]) -> None:
        """Hook for subclasses to take more from a token response (a rotated refresh token)."""

    # flow ------------------------------------------------------------------------------
    def _token_valid(self) -> bool:
        if self._access_token is None:
            return False
        return self._expires_at is None or self._clock() < self._expires_at

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._token_valid():
            async with self._lock:
                if not self._token_valid():  # another request may have refreshed meanwhile
                    response = yield await self._token_request()
                    await self._take_token(response)
        used = self._access_token
        request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            if self._access_token == used:  # nobody refreshed since: refresh now
                response = yield await self._token_request()
                await self._take_token(response)
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        yield request  # replayed once; a second 401 is the caller's AUTH error

    async def _token_request(self) -> httpx.Request:
        params = await self._grant_params()
        headers = {"Accept": "application/json"}
        if self._client_auth == "basic":
            raw = f"{self._client_id}:{self._client_secret}".encode()
            headers["Authorization"] = "Basic " + self._secret(base64.b64encode(raw).decode())
        else:
            params = {**params, "client_id": self._client_id, "client_secret": self._client_secret}
        return httpx.Request(
            "POST",
            self.token_url,
            data=params,
            headers=headers,
            extensions={TOKEN_REQUEST: True},
        )

    async def _take_token(self, response: httpx.Response) -> None:
        await response.aread()
        where = f"OAuth2 {self.grant_name} at {httpx.URL(self.token_url).path}"
        if response.status_code >= 300:
            kind = ErrorKind.AUTH
            if response.status_code >= 500:
                kind = ErrorKind.TRANSIENT
            elif response.status_code == 429:
                kind = ErrorKind.RATE_LIMITED
            raise ConnectorError(
                f"{where} failed with HTTP {response.status_code}: {_oauth_error(response)}",
                kind=kind,
                status=response.status_code,
            )
        try:
            payload = json.loads(response.content)
        except ValueError as exc:
            raise ConnectorError(
                f"{where} answered malformed JSON: {exc}", kind=ErrorKind.AUTH
            ) from None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectorError(f"{where} answered without an access_token", kind=ErrorKind.AUTH)
        self._access_token = self._secret(token)
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            self._expires_at = self._clock() + max(0.0, float(expires_in) - _EXPIRY_MARGIN)
        else:
            self._expires_at = None
        await self._accept_token(payload)


def _oauth_error(response: httpx.Response) -> str:
    """RFC 6749 section 5.2 error body (`error`, `error_description`) or the raw text."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = str(body["error"])
        if isinstance(body.get("error_description"), str):
            text += f" ({body['error_description']})"
        return text
    return response.text.strip()[:200] or response.reason_phrase


class OAuth2ClientCredentials(_OAuth2):
    """RFC 6749 section 4.4: a token for the client itself, fetched and cached until expiry."""

    grant_name = "client_credentials"

    def __init__(
        self,
        token_url: str,
        client_id: Secret,
        client_secret: Secret,
        scope: str | None = None,
        *,
        client_auth: Literal["basic", "body"] = "basic",
        register_secret: Callable[[str], None] = _noop,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            client_secret,
            client_auth=client_auth,
            register_secret=register_secret,
            clock=clock,
        )
        self.scope = scope

    async def _grant_params(self) -> dict[str, str]:
        params = {"grant_type": "client_credentials"}
        if self.scope:
            params["scope"] = self.scope
        return params


class OAuth2RefreshToken(_OAuth2):
    """RFC 6749 section 6: access tokens from a long-lived refresh token that may rotate.

    The newest refresh token lives in `kv[kv_key]` and wins over the configured one, so a
    token rotated by an earlier run is used even though the recipe's secret is older.
    """

    grant_name = "refresh_token"

    def __init__(
        self,
        token_url: str,
        client_id: Secret,
        client_secret: Secret,
        refresh_token: Secret,
        kv: KeyValueStore | None = None,
        kv_key: str = "oauth2.refresh_token",
        register_secret: Callable[[str], None] = _noop,
        *,
        client_auth: Literal["basic", "body"] = "basic",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            client_secret,
            client_auth=client_auth,
            register_secret=register_secret,
            clock=clock,
        )
        self._refresh_token = self._secret(reveal(refresh_token))
        self._kv = kv
        self._kv_key = kv_key
        self._loaded = kv is None

    @property
    def refresh_token(self) -> str:
        """The refresh token in use (after a rotation, the newest one)."""
        return self._refresh_token

    async def _grant_params(self) -> dict[str, str]:
        if not self._loaded and self._kv is not None:
            stored = await self._kv.get(self._kv_key)
            if stored:
                self._refresh_token = self._secret(stored)
            self._loaded = True
        return {"grant_type": "refresh_token", "refresh_token": self._refresh_token}

    async def _accept_token(self, payload: dict[str, Any]) -> None:
        rotated = payload.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = self._secret(rotated)
            if self._kv is not None:
                await self._kv.set(self._kv_key, rotated)
