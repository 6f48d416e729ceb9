"""Http11Transport's own HTTP/1.1 handling, against scripted servers on 127.0.0.1.

Each scripted server is a real asyncio TCP server that reads real requests and answers with the
exact bytes a test chooses, so framing, keep-alive and failure cases are exercised on the wire.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from flowkit.connectors.http_client import HttpClient
from flowkit.connectors.http_transport import Http11Transport
from flowkit.errors import ConnectorError, ErrorKind

Reply = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]


class Scripted:
    """A TCP server: for the n-th request overall, `reply(n, request, writer)` writes the
    answer and returns False to close the connection afterwards."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                if not await self.reply(len(self.requests), head + body, writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def test_keep_alive_reuses_one_connection() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok())
        return True

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        for _ in range(10):
            assert await http.get_json("/x") == {"ok": True}
    assert server.connections == 1


async def test_connection_close_is_honoured() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(extra=b"Connection: close\r\n"))
        return False

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        for _ in range(3):
            assert await http.get_json("/x") == {"ok": True}
    assert server.connections == 3


async def test_chunked_body_with_extensions_and_trailer() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b'4;ext=1\r\n{"a"\r\n', b"6\r\n:[1,2]\r\n", b"1\r\n}\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"0\r\nX-Checksum: abc\r\n\r\n")
        return True

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        assert await http.get_json("/c") == {"a": [1, 2]}
        assert await http.get_json("/c") == {"a": [1, 2]}
    assert server.connections == 1


async def test_body_until_close_and_http_10() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
        writer.write(b'{"old": ')
        await writer.drain()
        writer.write(b"true}")
        return False

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        response = await http.request("GET", "/old")
        assert response.json() == {"old": True}
        assert response.http_version == "HTTP/1.0"
        assert await http.get_json("/old") == {"old": True}
    assert server.connections == 2


async def test_interim_100_is_skipped() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        writer.write(ok())
        return True

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        assert await http.post_json("/x", json={"a": 1}) == {"ok": True}


async def test_head_and_204_have_no_body_and_keep_the_connection() -> None:
    async def reply(n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        head = await http.request("HEAD", "/h")
        assert head.headers["content-length"] == "5000"
        assert head.content == b""
        assert (await http.request("DELETE", "/d")).status_code == 204
    assert server.connections == 1


async def test_reused_connection_closed_by_the_server_retries_a_get_once() -> None:
    async def reply(n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False  # close the kept-alive connection without a word
        writer.write(ok())
        return True

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        assert await http.get_json("/x") == {"ok": True}
        assert await http.get_json("/x") == {"ok": True}
    assert len(server.requests) == 3
    assert server.connections == 2


async def test_reused_connection_closed_by_the_server_does_not_resend_a_post() -> None:
    async def reply(n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False
        writer.write(ok())
        return True

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        await http.post_json("/charge", json={"n": 1})
        with pytest.raises(ConnectorError) as info:
            await http.post_json("/charge", json={"n": 2})
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.maybe_sent is True
    assert len(server.requests) == 2  # the second POST went out once, never twice


async def test_read_timeout_counts_silence_not_total_time() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = b'{"slow":"' + b"x" * 30 + b'"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(len(body)):  # about 0.8 s in all, never silent for 0.5 s
            writer.write(body[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.02)
        return True

    async with Scripted(reply) as server, HttpClient(server.url, timeout=0.5) as http:
        assert await http.get_json("/trickle") == {"slow": "x" * 30}


async def test_silent_server_is_a_read_timeout_maybe_sent() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")
        await asyncio.sleep(5)
        return False

    async with Scripted(reply) as server, HttpClient(server.url, timeout=0.2) as http:
        with pytest.raises(ConnectorError) as info:
            await http.post_json("/x", json={})
    assert info.value.kind is ErrorKind.TIMEOUT
    assert info.value.maybe_sent is True


async def test_read_timeouts_of_different_lengths_share_one_watch() -> None:
    async def reply(_n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"/silent" in request.split(b"\r\n")[0]:
            await asyncio.sleep(5)
            return False
        await asyncio.sleep(0.6)
        writer.write(ok())
        return True

    transport = Http11Transport()
    async with Scripted(reply) as server, httpx.AsyncClient(transport=transport) as client:
        slow = asyncio.create_task(client.get(server.url + "/slow", timeout=5))
        await asyncio.sleep(0.05)  # the long deadline is watched first
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url + "/silent", timeout=0.2)
        assert asyncio.get_running_loop().time() - started < 2.5  # not held to the 5 s watch
        assert (await slow).json() == {"ok": True}


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    ],
    ids=["conflicting-length", "negative-length", "bad-chunk", "bad-status", "bad-header"],
)
async def test_malformed_responses_are_protocol_errors(answer: bytes) -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(1)
        return False

    transport = Http11Transport()
    async with Scripted(reply) as server, httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url + "/bad", timeout=5)


async def test_header_with_a_line_break_is_refused_before_sending() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok())
        return True

    async with Scripted(reply) as server, HttpClient(server.url) as http:
        with pytest.raises(ConnectorError) as info:
            await http.request("GET", "/x", headers={"X-Note": "a\r\nX-Injected: 1"})
    assert info.value.kind is ErrorKind.PERMANENT
    assert info.value.maybe_sent is False
    assert server.requests == []


async def test_pool_timeout_and_a_cancelled_request_frees_its_connection() -> None:
    release = asyncio.Event()

    async def reply(n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            await release.wait()
        writer.write(ok())
        return True

    transport = Http11Transport(max_connections=1)
    async with Scripted(reply) as server, httpx.AsyncClient(transport=transport) as client:
        first = asyncio.create_task(client.get(server.url + "/held"))
        while not server.requests:
            await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await client.get(server.url + "/next", timeout=httpx.Timeout(5, pool=0.1))
        first.cancel()  # its connection's state is unknown: closed, the slot freed
        with pytest.raises(asyncio.CancelledError):
            await first
        response = await client.get(server.url + "/after", timeout=5)
        assert response.json() == {"ok": True}
        release.set()
    assert server.connections == 2


async def test_waiting_requests_get_connections_in_turn() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.001)
        writer.write(ok())
        return True

    async with Scripted(reply) as server, HttpClient(server.url, max_connections=3) as http:
        results = await asyncio.gather(*(http.get_json("/x", params={"i": i}) for i in range(60)))
    assert results == [{"ok": True}] * 60
    assert server.connections == 3


async def test_streamed_request_body_is_sent_whole(serve: Any) -> None:
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_post("/echo", echo)
    handle = serve(app)

    async def parts() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    async with httpx.AsyncClient(transport=Http11Transport()) as client:
        response = await client.post(handle.url + "/echo", content=parts())
    assert response.json() == {"body": "hello world"}


# TLS ----------------------------------------------------------------------------------------


async def _tls_server(certificate: Any) -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ok(b'{"secure":true}'))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=certificate.server_context())
    return server, server.sockets[0].getsockname()[1]


async def test_https_verifies_the_certificate(certificate: Any) -> None:
    server, port = await _tls_server(certificate)
    try:
        trusting = ssl.create_default_context(cafile=str(certificate.cert))
        async with HttpClient(
            f"https://localhost:{port}", transport=Http11Transport(verify=trusting)
        ) as http:
            assert await http.get_json("/s") == {"secure": True}
        async with HttpClient(f"https://localhost:{port}") as http:
            with pytest.raises(ConnectorError) as info:
                await http.get_json("/s")
        assert info.value.maybe_sent is False
        assert "certificate verify failed" in str(info.value)
    finally:
        server.close()


async def test_https_through_a_connect_proxy(certificate: Any, connect_proxy: Any) -> None:
    server, port = await _tls_server(certificate)
    try:
        transport = Http11Transport(
            verify=ssl.create_default_context(cafile=str(certificate.cert)),
            proxy=f"http://127.0.0.1:{connect_proxy.port}",
        )
        async with HttpClient(f"https://localhost:{port}", transport=transport) as http:
            assert await http.get_json("/s") == {"secure": True}
            assert await http.get_json("/s") == {"secure": True}
        heads = [head.split(b"\r\n")[0] for head in connect_proxy.heads]
        assert heads == [f"CONNECT localhost:{port} HTTP/1.1".encode()]
    finally:
        server.close()


def test_only_http_proxies() -> None:
    with pytest.raises(ValueError, match="only http://"):
        Http11Transport(proxy="socks5://127.0.0.1:1080")


async def test_plain_http_through_a_proxy_reuses_the_proxy_connection() -> None:
    async def reply(_n: int, _request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(b'{"proxied":true}'))
        return True

    async with Scripted(reply) as proxy:
        transport = Http11Transport(proxy=proxy.url)
        async with HttpClient("http://shop.invalid/api", transport=transport) as http:
            for page in (1, 2, 3):
                assert await http.get_json("orders", params={"page": page}) == {"proxied": True}
    assert proxy.connections == 1
    lines = [r.split(b"\r\n")[0] for r in proxy.requests]
    assert lines == [b"GET http://shop.invalid/api/orders?page=%d HTTP/1.1" % p for p in (1, 2, 3)]


async def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on() -> None:
    from flowkit.connectors.http_transport import _Pool

    pool = _Pool(1, keepalive_expiry=4.0)
    origin = ("http", "127.0.0.1", 9)
    assert await pool.acquire(origin, None) is None  # the one slot, reserved
    first = asyncio.create_task(pool.acquire(origin, None))
    second = asyncio.create_task(pool.acquire(origin, None))
    await asyncio.sleep(0)  # both wait
    pool.unreserve()  # the slot is free: handed to `first`...
    first.cancel()  # ...which is cancelled in the same turn
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 5) is None  # `second` got the slot
    assert pool.count == 1


async def test_a_transport_of_another_event_loop_is_accepted() -> None:
    # uvloop's transports have asyncio's methods without deriving from its classes; the
    # connection must not insist on the class (it did, and every request under uvloop failed).
    from flowkit.connectors.http_wire import Connection, Silence

    class DuckTransport:
        def __init__(self) -> None:
            self.sent = b""

        def write(self, data: bytes) -> None:
            self.sent += data

        def is_closing(self) -> bool:
            return False

        def close(self) -> None:
            pass

    duck = DuckTransport()
    conn = Connection(("http", "127.0.0.1", 80), Silence())
    conn.connection_made(duck)  # type: ignore[arg-type]
    exchange = asyncio.create_task(
        conn.exchange(b"GET / HTTP/1.1\r\n\r\n", head_only=False, write_timeout=None,
                      read_timeout=5)
    )  # fmt: skip
    await asyncio.sleep(0)
    conn.data_received(ok())
    answer = await exchange
    assert (answer.status, answer.body) == (200, b'{"ok":true}')
    assert duck.sent == b"GET / HTTP/1.1\r\n\r\n"
