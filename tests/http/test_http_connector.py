"""The generic `http` connector against a local aiohttp API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from aiohttp import web

from flowkit.connectors.base import CallContext, Effect, Idempotency
from flowkit.connectors.http import HttpSettings, connector
from flowkit.errors import ConnectorError, ErrorKind

ITEMS = [{"id": i, "name": f"item {i}"} for i in range(1, 8)]


class Api:
    """A small REST API with the behaviours the connector must handle."""

    def __init__(self) -> None:
        self.requests: list[web.Request] = []
        self.bodies: list[Any] = []
        self.access_token = "at-1"
        self.refresh_token = "rt-1"
        self.token_calls = 0
        self.fail: list[tuple[int, dict[str, str], str]] = []
        self.app = web.Application(middlewares=[self.record])
        r = self.app.router
        r.add_get("/v2/cursor", self.cursor_page)
        r.add_get("/v2/linked", self.linked_page)
        r.add_get("/v2/stuck", self.stuck)
        r.add_route("*", "/v2/echo/{tail:.*}", self.echo)
        r.add_get("/v2/text", self.text)
        r.add_get("/v2/badjson", self.badjson)
        r.add_get("/v2/slow", self.slow)
        r.add_get("/v2/secure", self.secure)
        r.add_post("/oauth/token", self.token)

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(request)
        if self.fail and not request.path.startswith("/oauth"):
            status, headers, body = self.fail.pop(0)
            return web.json_response({"message": body}, status=status, headers=headers)
        response: web.StreamResponse = await handler(request)
        return response

    async def cursor_page(self, request: web.Request) -> web.Response:
        start = int(request.query.get("after", "0"))
        page = [i for i in ITEMS if i["id"] > start][: int(request.query.get("per_page", "3"))]
        more = page and page[-1]["id"] < ITEMS[-1]["id"]
        return web.json_response(
            {"result": {"data": page}, "meta": {"next": str(page[-1]["id"]) if more else None}}
        )

    async def linked_page(self, request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        data = ITEMS[(page - 1) * 3 : page * 3]
        headers = {}
        if page * 3 < len(ITEMS):
            headers["Link"] = (
                f'</v2/linked?page={page + 1}&tag={request.query.get("tag", "")}>; rel="next", '
                '</v2/linked?page=1>; rel="first"'
            )
        return web.json_response(data, headers=headers)

    async def stuck(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [1], "next": "same"})

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.bodies.append(body)
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body": body,
            },
            status=201 if request.method == "POST" else 200,
        )

    async def text(self, request: web.Request) -> web.Response:
        return web.Response(text="plain words")

    async def badjson(self, request: web.Request) -> web.Response:
        return web.Response(text='{"broken": ', content_type="application/json")

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.json_response({})

    async def secure(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return web.json_response({"message": "token expired"}, status=401)
        return web.json_response({"secret": "data"})

    async def token(self, request: web.Request) -> web.Response:
        self.token_calls += 1
        form = await request.post()
        assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:csec").decode()
        if form.get("refresh_token") != self.refresh_token:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Refresh token revoked"},
                status=400,
            )
        self.access_token = f"at-{self.token_calls + 1}"
        self.refresh_token = f"rt-{self.token_calls + 1}"
        return web.json_response(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": 3600,
                "token_type": "bearer",
            }
        )


@pytest.fixture
def api(serve: Any) -> tuple[Api, str]:
    server = Api()
    return server, serve(server.app).url


async def open_http(url: str, runtime: Any, **settings: Any) -> Any:
    config = HttpSettings.model_validate({"base_url": f"{url}/v2", **settings})
    return await connector.open(config, runtime)


async def act(session: Any, name: str, key: str = "fk-1", /, **values: Any) -> Any:
    action = connector.actions[name]
    return await action.run(session, action.Input.model_validate(values), CallContext(key))


def test_declared_effects() -> None:
    declared = {n: (a.effect, a.idempotency) for n, a in connector.actions.items()}
    assert declared == {
        "get": (Effect.READ, Idempotency.NONE),
        "post": (Effect.WRITE, Idempotency.NONE),
        "post_idempotent": (Effect.WRITE, Idempotency.HEADER),
        "put": (Effect.WRITE, Idempotency.NATURAL),
        "patch": (Effect.WRITE, Idempotency.NONE),
        "delete": (Effect.WRITE, Idempotency.NATURAL),
        "list": (Effect.READ, Idempotency.NONE),
    }


async def test_request_actions(api: tuple[Api, str], runtime: Any) -> None:
    server, url = api
    session = await open_http(
        url,
        runtime,
        headers={"X-Shop": "demo"},
        auth={"type": "api_key", "header": "X-Api-Key", "key": "k-secret"},
        idempotency_header="Idempotency-Key",
    )
    try:
        got = await act(session, "get", path="echo/a", query={"q": "1"})
        assert got.status == 200 and got.body["query"] == {"q": "1"}
        assert got.headers["content-type"].startswith("application/json")
        posted = await act(session, "post_idempotent", "fk-abc", path="echo/o", json={"n": 2})
        assert posted.status == 201 and posted.body["body"] == {"n": 2}
        put = await act(session, "put", path="/echo/s/1", json={"stock": 5})
        assert put.body["method"] == "PUT"
        patched = await act(session, "patch", path="echo/s/1", json={"stock": 6})
        assert patched.body["method"] == "PATCH"
        deleted = await act(session, "delete", path="echo/s/1")
        assert (deleted.status, deleted.body) == (204, None)
        text = await act(session, "get", path="text")
        assert text.body == "plain words"
        plain = await act(session, "post", path="echo/o", json=[1])
        assert plain.body["body"] == [1]
    finally:
        await connector.close(session)
    assert all(r.headers["X-Api-Key"] == "k-secret" for r in server.requests)
    assert all(r.headers["X-Shop"] == "demo" for r in server.requests)
    keyed = [r.headers.get("Idempotency-Key") for r in server.requests]
    assert keyed == [None, "fk-abc", None, None, None, None, None]
    assert "k-secret" in runtime.secrets


async def test_post_idempotent_needs_the_setting(api: tuple[Api, str], runtime: Any) -> None:
    _server, url = api
    session = await open_http(url, runtime)
    try:
        with pytest.raises(ConnectorError, match="idempotency_header") as info:
            await act(session, "post_idempotent", path="echo/x", json={})
        assert info.value.kind is ErrorKind.VALIDATION
    finally:
        await connector.close(session)


async def test_list_with_cursor_field(api: tuple[Api, str], runtime: Any) -> None:
    _server, url = api
    session = await open_http(url, runtime)
    try:
        out = await act(
            session,
            "list",
            path="cursor",
            query={"per_page": 3},
            items_field="result.data",
            cursor_param="after",
            next_cursor_field="meta.next",
        )
        assert [i["id"] for i in out.items] == [1, 2, 3, 4, 5, 6, 7]
        assert out.cursor == "6"
        resumed = await act(
            session,
            "list",
            path="cursor",
            items_field="result.data",
            cursor_param="after",
            next_cursor_field="meta.next",
            cursor="5",
        )
        assert [i["id"] for i in resumed.items] == [6, 7]
    finally:
        await connector.close(session)


async def test_list_with_link_header(api: tuple[Api, str], runtime: Any) -> None:
    server, url = api
    session = await open_http(url, runtime)
    try:
        out = await act(session, "list", path="linked", query={"tag": "x"})
        assert [i["id"] for i in out.items] == [1, 2, 3, 4, 5, 6, 7]
        assert [r.query_string for r in server.requests] == [
            "tag=x",
            "page=2&tag=x",
            "page=3&tag=x",
        ]
    finally:
        await connector.close(session)


async def test_list_guards(api: tuple[Api, str], runtime: Any) -> None:
    _server, url = api
    session = await open_http(url, runtime)
    try:
        with pytest.raises(ConnectorError, match="pagination did not advance"):
            await act(session, "list", path="stuck", items_field="items", next_cursor_field="next")
        with pytest.raises(ConnectorError, match="items field 'data' not found"):
            await act(session, "list", path="stuck", items_field="data")
        with pytest.raises(ConnectorError, match="expected a list of items") as info:
            await act(session, "list", path="stuck")
        assert info.value.hint and "items_field" in info.value.hint
    finally:
        await connector.close(session)


async def test_faults(api: tuple[Api, str], runtime: Any) -> None:
    server, url = api
    session = await open_http(url, runtime, timeout=0.2)
    try:
        server.fail.append((429, {"Retry-After": "30"}, "slow down"))
        with pytest.raises(ConnectorError) as info:
            await act(session, "get", path="text")
        assert (info.value.kind, info.value.retry_after) == (ErrorKind.RATE_LIMITED, 30.0)
        assert str(info.value) == "HTTP 429 from GET /v2/text: slow down"
        server.fail.append((503, {}, "maintenance"))
        with pytest.raises(ConnectorError) as info:
            await act(session, "post", path="echo/x", json={})
        assert info.value.kind is ErrorKind.TRANSIENT
        with pytest.raises(ConnectorError) as info:
            await act(session, "get", path="badjson")
        assert info.value.kind is ErrorKind.PERMANENT
        assert str(info.value).startswith("malformed JSON from GET /v2/badjson")
        with pytest.raises(ConnectorError) as info:
            await act(session, "get", path="slow")
        assert info.value.kind is ErrorKind.TIMEOUT and info.value.maybe_sent
        server.fail.append((422, {}, "sku is required"))
        with pytest.raises(ConnectorError) as info:
            await act(session, "put", path="echo/x", json={})
        assert (info.value.kind, str(info.value)) == (
            ErrorKind.VALIDATION,
            "HTTP 422 from PUT /v2/echo/x: sku is required",
        )
    finally:
        await connector.close(session)


async def test_oauth2_refresh_on_401_and_rotation(
    api: tuple[Api, str], runtime: Any, kv: Any
) -> None:
    server, url = api
    oauth = {
        "type": "oauth2_refresh_token",
        "token_url": f"{url}/oauth/token",
        "client_id": "cid",
        "client_secret": "csec",
        "refresh_token": "rt-1",
    }
    session = await open_http(url, runtime, auth=oauth)
    try:
        assert (await act(session, "get", path="secure")).body == {"secret": "data"}
        assert server.token_calls == 1 and kv.data == {"http.oauth2.refresh_token": "rt-2"}
        server.access_token = "rotated-by-provider"  # our token stops working
        server.refresh_token = "rt-2"
        # 401 -> one refresh -> replay: the server issues at-3 and accepts it
        result = await act(session, "get", path="secure")
        assert result.body == {"secret": "data"}
        assert server.token_calls == 2
        assert kv.data == {"http.oauth2.refresh_token": "rt-3"}
        assert {"rt-2", "rt-3", "at-2", "at-3"} <= set(runtime.secrets)
    finally:
        await connector.close(session)

    # a new run starts from the rotated token in kv, not the stale configured one
    session = await open_http(url, runtime, auth=oauth)
    try:
        await act(session, "get", path="secure")
        assert server.token_calls == 3
    finally:
        await connector.close(session)

    server.refresh_token = "revoked"
    session = await open_http(url, runtime, auth=oauth)
    try:
        with pytest.raises(ConnectorError) as info:
            await act(session, "get", path="secure")
        assert info.value.kind is ErrorKind.AUTH
        assert "invalid_grant (Refresh token revoked)" in str(info.value)
    finally:
        await connector.close(session)


async def test_basic_bearer_and_rate_limit_settings(api: tuple[Api, str], runtime: Any) -> None:
    server, url = api
    for auth, expected in [
        (
            {"type": "basic", "username": "u", "password": "p"},
            "Basic " + base64.b64encode(b"u:p").decode(),
        ),
        ({"type": "bearer", "token": "tok"}, "Bearer tok"),
    ]:
        session = await open_http(url, runtime, auth=auth, rate_limit=1000)
        try:
            await act(session, "get", path="text")
        finally:
            await connector.close(session)
        assert server.requests[-1].headers["Authorization"] == expected
    with pytest.raises(ValueError, match="auth"):
        HttpSettings.model_validate({"base_url": url, "auth": {"type": "digest"}})
