"""Http11Transport against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from flowkit.connectors.http_client import HttpClient, header_dict
from flowkit.connectors.http_transport import Http11Transport
from flowkit.errors import ConnectorError, ErrorKind
from flowkit.sandbox.server import free_port


def echo_app() -> web.Application:
    app = web.Application()
    state: dict[str, Any] = {"flaky": 0}

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body": body.decode(),
                "headers": {k: v for k, v in request.headers.items()},
            }
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "1")))
        return web.json_response({"late": True})

    async def gz(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"zipped": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def drop(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # the request arrived; the answer never comes
        raise asyncio.CancelledError

    async def flaky(request: web.Request) -> web.Response:
        state["flaky"] += 1
        if state["flaky"] == 1:
            return web.json_response(
                {"message": "maintenance"}, status=503, headers={"Retry-After": "3"}
            )
        return web.json_response({"ok": True})

    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/gzip", gz)
    app.router.add_post("/drop", drop)
    app.router.add_get("/flaky", flaky)
    return app


@pytest.fixture
def server(serve: Any) -> Any:
    return serve(echo_app())


async def test_round_trip_headers_query_body(server: Any) -> None:
    async with HttpClient(server.url, headers={"X-Test": "1"}) as http:
        data = await http.post_json("/echo", params={"q": "a b"}, json={"n": 1})
    assert data["method"] == "POST"
    assert data["query"] == {"q": "a b"}
    assert data["body"] == '{"n":1}'
    assert data["headers"]["X-Test"] == "1"
    assert data["headers"]["Content-Type"] == "application/json"
    assert data["headers"]["User-Agent"].startswith("flowkit/")
    assert data["headers"]["Content-Length"] == "7"


async def test_form_body_and_get_without_content_type(server: Any) -> None:
    async with HttpClient(server.url) as http:
        form = await http.post_json("/echo", data={"a": "1", "b": ["x", "y"]})
        got = await http.get_json("/echo")
    assert form["body"] == "a=1&b=x&b=y"
    assert form["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Content-Type" not in got["headers"]


async def test_gzip_body_is_decoded(server: Any) -> None:
    async with HttpClient(server.url) as http:
        assert await http.get_json("/gzip") == {"zipped": True}


async def test_plain_httpx_client_over_the_transport(server: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, transport=Http11Transport()) as client:
        response = await client.get("/echo", params={"x": "1"})
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert response.json()["query"] == {"x": "1"}


async def test_many_in_flight_share_a_bounded_pool(server: Any) -> None:
    async with HttpClient(server.url, max_connections=5) as http:
        results = await asyncio.gather(
            *(http.get_json("/echo", params={"i": i}) for i in range(40))
        )
    assert sorted(int(r["query"]["i"]) for r in results) == list(range(40))


async def test_read_timeout_is_timeout_maybe_sent(server: Any) -> None:
    async with HttpClient(server.url, timeout=0.1) as http:
        with pytest.raises(ConnectorError) as info:
            await http.request("GET", "/slow", params={"s": "0.4"})
    assert info.value.kind is ErrorKind.TIMEOUT
    assert info.value.maybe_sent is True
    assert "GET /slow" in str(info.value)


async def test_connection_dropped_after_request_is_maybe_sent(server: Any) -> None:
    async with HttpClient(server.url) as http:
        with pytest.raises(ConnectorError) as info:
            await http.request("POST", "/drop", json={"charge": 1})
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.maybe_sent is True


async def test_connection_refused_is_transient_not_sent() -> None:
    port = free_port()  # nothing listens there
    async with HttpClient(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(ConnectorError) as info:
            await http.request("POST", "/x")
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.maybe_sent is False
    assert str(info.value).startswith("cannot connect for POST /x (127.0.0.1)")


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A socket that accepts nothing: its backlog of 1 fills up so connects hang."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    held: list[socket.socket] = []
    port = sock.getsockname()[1]
    for _ in range(4):  # fill the accept queue
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        held.append(c)
    yield port
    for c in held:
        c.close()
    sock.close()


async def test_garbage_response_is_protocol_error() -> None:
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]

    def answer() -> None:
        conn, _ = lsock.accept()
        conn.recv(65536)
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        async with HttpClient(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(ConnectorError) as info:
                await http.request("GET", "/")
        assert info.value.kind is ErrorKind.TRANSIENT
        assert info.value.maybe_sent is True
    finally:
        thread.join(5)
        lsock.close()


async def test_503_then_success_classification(server: Any) -> None:
    async with HttpClient(server.url) as http:
        with pytest.raises(ConnectorError) as info:
            await http.request("GET", "/flaky")
        assert info.value.kind is ErrorKind.TRANSIENT
        assert info.value.retry_after == 3.0
        assert str(info.value) == "HTTP 503 from GET /flaky: maintenance"
        assert await http.get_json("/flaky") == {"ok": True}


async def test_closed_transport_refuses() -> None:
    transport = Http11Transport()
    await transport.aclose()
    http = HttpClient("http://127.0.0.1:9", transport=transport)
    with pytest.raises(ConnectorError):
        await http.request("GET", "/")


def test_rejects_zero_connections() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        Http11Transport(max_connections=0)


async def test_connect_timeout_is_timeout_not_sent(silent_listener: int) -> None:
    async with HttpClient(f"http://127.0.0.1:{silent_listener}", timeout=0.3) as http:
        with pytest.raises(ConnectorError) as info:
            await http.request("POST", "/x")
    assert info.value.kind is ErrorKind.TIMEOUT
    assert info.value.maybe_sent is False


async def test_explicit_proxy_receives_the_request(serve: Any) -> None:
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.host} {request.path_qs}")
        return web.json_response({"proxied": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    handle = serve(app)
    transport = Http11Transport(proxy=handle.url)
    async with HttpClient("http://shop.invalid/api", transport=transport) as http:
        assert await http.get_json("orders", params={"page": 2}) == {"proxied": True}
    assert seen == ["GET shop.invalid /api/orders?page=2"]


# HttpClient.fetch: the lean path must give what `request` gives ------------------------------


async def test_fetch_answers_like_request(server: Any, runtime: Any) -> None:
    async with HttpClient(server.url, headers={"X-Test": "1"}, runtime=runtime) as http:
        reply = await http.fetch("post", "/echo", params={"q": "a b"}, json={"n": 1},
                                 headers={"Idempotency-Key": "k-1"})  # fmt: skip
        response = await http.request("POST", "/echo", params={"q": "a b"}, json={"n": 1},
                                      headers={"Idempotency-Key": "k-1"})  # fmt: skip
    assert reply.status_code == response.status_code == 200
    assert reply.headers == header_dict(response)
    fetched, requested = http.json(reply), response.json()
    fetched["headers"].pop("Date", None)
    requested["headers"].pop("Date", None)
    assert fetched == requested  # the same request bytes reached the server
    assert fetched["headers"]["Idempotency-Key"] == "k-1"
    assert reply.method == "POST" and reply.url.path == "/echo"
    assert [line.split(" (")[0] for line in runtime.lines] == ["http: POST /echo -> 200"] * 2


async def test_fetch_decodes_compressed_bodies(server: Any) -> None:
    async with HttpClient(server.url) as http:
        reply = await http.fetch("GET", "/gzip")
    assert http.json(reply) == {"zipped": True}


async def test_fetch_errors_are_the_errors_of_request(server: Any, serve: Any) -> None:
    async with HttpClient(server.url) as http:
        with pytest.raises(ConnectorError) as fetched:
            await http.fetch("GET", "/flaky")
    async with HttpClient(serve(echo_app()).url) as http:  # a fresh server: 503 first again
        with pytest.raises(ConnectorError) as requested:
            await http.request("GET", "/flaky")
    assert str(fetched.value) == str(requested.value) == "HTTP 503 from GET /flaky: maintenance"
    assert fetched.value.retry_after == requested.value.retry_after == 3.0

    port = free_port()
    async with HttpClient(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(ConnectorError) as refused:
            await http.fetch("POST", "/x", json={})
    assert refused.value.kind is ErrorKind.TRANSIENT
    assert refused.value.maybe_sent is False
    assert str(refused.value).startswith("cannot connect for POST /x (127.0.0.1)")


async def test_fetch_with_an_auth_flow_goes_through_request(server: Any) -> None:
    async with HttpClient(server.url, auth=httpx.BasicAuth("shop", "s3cret")) as http:
        reply = await http.fetch("GET", "/echo")
    assert http.json(reply)["headers"]["Authorization"].startswith("Basic ")


async def test_fetch_malformed_json_names_the_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{not json", headers={"Content-Type": "text/x"})

    transport = httpx.MockTransport(handler)
    async with HttpClient("http://shop.invalid", transport=transport) as http:
        reply = await http.fetch("POST", "/orders")
        with pytest.raises(ConnectorError) as info:
            http.json(reply)
    assert str(info.value).startswith("malformed JSON from POST /orders:")
    assert info.value.maybe_sent is True
