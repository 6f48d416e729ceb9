"""Auth flows: static credentials and OAuth2 (refresh on 401, rotation persisted)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from flowkit.connectors.auth import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from flowkit.connectors.http_client import HttpClient
from flowkit.errors import ConnectorError, ErrorKind

TOKEN_URL = "https://auth.example.test/oauth2/v1/tokens/bearer"


class Provider:
    """A token endpoint plus an API in one MockTransport handler.

    Issues access tokens `at-N` and (when rotating) refresh tokens `rt-N`; the API accepts only
    the newest access token.
    """

    def __init__(self, *, rotate: bool = True, refresh_token: str = "rt-0") -> None:
        self.rotate = rotate
        self.valid_refresh = refresh_token
        self.issued = 0
        self.current: str | None = None
        self.token_calls: list[dict[str, list[str]]] = []
        self.api_calls: list[str | None] = []
        self.fail_refresh: tuple[int, Any] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            form = parse_qs(request.content.decode())
            self.token_calls.append(form)
            assert (
                request.headers["Authorization"]
                == "Basic " + base64.b64encode(b"client-1:csecret").decode()
            )
            if self.fail_refresh is not None:
                status, body = self.fail_refresh
                return httpx.Response(status, json=body)
            grant = form["grant_type"][0]
            if grant == "refresh_token" and form["refresh_token"][0] != self.valid_refresh:
                return httpx.Response(
                    400, json={"error": "invalid_grant", "error_description": "Token invalid"}
                )
            self.issued += 1
            self.current = f"at-{self.issued}"
            body: dict[str, Any] = {"access_token": self.current, "expires_in": 3600}
            if grant == "refresh_token" and self.rotate:
                self.valid_refresh = f"rt-{self.issued}"
                body["refresh_token"] = self.valid_refresh
            return httpx.Response(200, json=body)
        auth = request.headers.get("Authorization")
        self.api_calls.append(auth)
        if auth != f"Bearer {self.current}":
            return httpx.Response(401, json={"fault": "AuthenticationFailed"})
        return httpx.Response(200, json={"ok": True})


def client(provider: Provider, auth: httpx.Auth, **kwargs: Any) -> HttpClient:
    return HttpClient(
        "https://api.example.test", auth=auth, transport=httpx.MockTransport(provider), **kwargs
    )


async def test_static_auths_set_headers_and_register_secrets(runtime: Any) -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200)

    for auth in (
        ApiKeyAuth("X-Api-Key", SecretStr("k-123")),
        BasicAuth("ck_user", SecretStr("cs_pass")),
        BearerAuth("b-456"),
    ):
        http = HttpClient(
            "https://x.test", auth=auth, transport=httpx.MockTransport(handler), runtime=runtime
        )
        await http.request("GET", "/")
    assert seen[0]["X-Api-Key"] == "k-123"
    assert seen[1]["Authorization"] == "Basic " + base64.b64encode(b"ck_user:cs_pass").decode()
    assert seen[2]["Authorization"] == "Bearer b-456"
    assert {"k-123", "cs_pass", "b-456"} <= set(runtime.secrets)


async def test_refresh_token_first_use_then_401_refresh_and_replay_once(make_kv: Any) -> None:
    provider = Provider()
    kv = make_kv()
    registered: list[str] = []
    auth = OAuth2RefreshToken(
        TOKEN_URL,
        "client-1",
        SecretStr("csecret"),
        SecretStr("rt-0"),
        kv,
        "qbo.rt",
        register_secret=registered.append,
    )
    http = client(provider, auth)
    assert (await http.request("GET", "/company")).status_code == 200
    assert len(provider.token_calls) == 1
    assert kv.data == {"qbo.rt": "rt-1"}  # rotated token persisted
    assert {"rt-0", "at-1", "rt-1", "csecret"} <= set(registered)

    provider.current = None  # the provider revokes our access token
    response_calls_before = len(provider.api_calls)
    assert (await http.request("GET", "/company")).status_code == 200
    assert len(provider.token_calls) == 2  # exactly one refresh
    assert provider.api_calls[response_calls_before:] == ["Bearer at-1", "Bearer at-2"]
    assert kv.data == {"qbo.rt": "rt-2"}
    assert auth.refresh_token == "rt-2"


async def test_refresh_token_prefers_kv_value(make_kv: Any) -> None:
    provider = Provider(refresh_token="rt-from-last-run")
    kv = make_kv({"qbo.rt": "rt-from-last-run"})
    auth = OAuth2RefreshToken(TOKEN_URL, "client-1", "csecret", "rt-configured-stale", kv, "qbo.rt")
    await client(provider, auth).request("GET", "/x")
    assert provider.token_calls[0]["refresh_token"] == ["rt-from-last-run"]


async def test_second_401_after_refresh_is_auth_error(make_kv: Any) -> None:
    provider = Provider()
    auth = OAuth2RefreshToken(TOKEN_URL, "client-1", "csecret", "rt-0", make_kv(), "k")

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            return provider(request)
        provider.api_calls.append(request.headers["Authorization"])
        return httpx.Response(401, json={"message": "app not authorised"})

    http = HttpClient("https://api.example.test", auth=auth, transport=httpx.MockTransport(handler))
    with pytest.raises(ConnectorError) as info:
        await http.request("GET", "/x")
    assert info.value.kind is ErrorKind.AUTH
    assert str(info.value) == "HTTP 401 from GET /x: app not authorised"
    assert len(provider.api_calls) == 2  # original + one replay
    assert len(provider.token_calls) == 2


async def test_failing_refresh_is_auth_with_provider_message(make_kv: Any) -> None:
    provider = Provider(refresh_token="rt-other")
    auth = OAuth2RefreshToken(TOKEN_URL, "client-1", "csecret", "rt-0", make_kv(), "k")
    with pytest.raises(ConnectorError) as info:
        await client(provider, auth).request("GET", "/x")
    err = info.value
    assert err.kind is ErrorKind.AUTH
    assert str(err) == (
        "OAuth2 refresh_token at /oauth2/v1/tokens/bearer failed with HTTP 400: "
        "invalid_grant (Token invalid)"
    )
    assert provider.api_calls == []  # the API request was never sent


async def test_token_endpoint_outage_is_transient(make_kv: Any) -> None:
    provider = Provider()
    provider.fail_refresh = (503, {"error": "temporarily_unavailable"})
    auth = OAuth2RefreshToken(TOKEN_URL, "client-1", "csecret", "rt-0", make_kv(), "k")
    with pytest.raises(ConnectorError) as info:
        await client(provider, auth).request("GET", "/x")
    assert info.value.kind is ErrorKind.TRANSIENT


async def test_concurrent_401s_refresh_once(make_kv: Any) -> None:
    provider = Provider()
    auth = OAuth2RefreshToken(TOKEN_URL, "client-1", "csecret", "rt-0", make_kv(), "k")
    http = client(provider, auth)
    await http.request("GET", "/warm")
    provider.current = None  # revoked: every request in flight gets a 401

    results = await asyncio.gather(*(http.request("GET", f"/x{i}") for i in range(10)))
    assert all(r.status_code == 200 for r in results)
    assert len(provider.token_calls) == 2  # the first fetch and a single refresh


async def test_client_credentials_caches_and_refreshes_on_expiry() -> None:
    provider = Provider()
    now = [1000.0]
    auth = OAuth2ClientCredentials(
        TOKEN_URL, "client-1", "csecret", scope="read write", clock=lambda: now[0]
    )
    http = client(provider, auth)
    await http.request("GET", "/a")
    await http.request("GET", "/b")
    assert len(provider.token_calls) == 1
    assert provider.token_calls[0]["grant_type"] == ["client_credentials"]
    assert provider.token_calls[0]["scope"] == ["read write"]
    now[0] += 3600  # past expiry (minus the safety margin)
    await http.request("GET", "/c")
    assert len(provider.token_calls) == 2


async def test_client_credentials_401_refreshes_once() -> None:
    provider = Provider()
    auth = OAuth2ClientCredentials(TOKEN_URL, "client-1", "csecret")
    http = client(provider, auth)
    await http.request("GET", "/a")
    provider.current = "rotated-server-side"
    response = await http.request("GET", "/b")
    assert response.status_code == 200
    assert provider.api_calls[-2:] == ["Bearer at-1", "Bearer at-2"]


async def test_client_auth_in_body() -> None:
    forms: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            assert "Authorization" not in request.headers
            forms.append(parse_qs(request.content.decode()))
            return httpx.Response(200, json={"access_token": "t"})
        return httpx.Response(200)

    auth = OAuth2ClientCredentials("https://a.test/token", "cid", "cs", client_auth="body")
    await HttpClient("https://a.test", auth=auth, transport=httpx.MockTransport(handler)).request(
        "GET", "/"
    )
    assert forms[0]["client_id"] == ["cid"] and forms[0]["client_secret"] == ["cs"]
