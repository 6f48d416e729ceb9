"""HTTP/1.1 over asyncio protocols, pooled: the transport under every HTTP connector.

httpx gives flowkit its API (requests, responses, `Auth` flows, `MockTransport` in tests, the
exception tree), but its default async transport (httpcore) slows down with the square of the
number of requests in flight (see /work/shared/notes/http-performance.md), and aiohttp's
client, which flowkit used before, spends about three times the CPU of the bytes themselves on
each request. This transport speaks HTTP/1.1 itself, on `asyncio.Protocol` connections
(`flowkit.connectors.http_wire`): a request is one `write`, and its response is parsed as it
arrives, in `data_received`, so the caller's task wakes up once, when the whole response is in.

What it does:
  * keep-alive connections pooled per origin, at most `max_connections` open in all; a waiting
    request gets the next free connection in arrival order; idle connections older than
    `keepalive_expiry`, or closed by the server, are never reused;
  * responses framed by Content-Length, chunked transfer coding or the end of the connection;
    1xx interim responses skipped; HEAD, 204 and 304 have no body; bodies are read whole
    (connectors exchange small JSON documents) and `Content-Encoding` is left to httpx;
  * the per-request timeouts httpx puts in `request.extensions["timeout"]`: connect (TCP, TLS
    and proxy tunnel), pool (waiting for a free connection), write (while the socket's buffer
    is full) and read (the longest silence while waiting for the response);
  * TLS with certificate and host name checks (`verify=False` turns them off, an
    `ssl.SSLContext` replaces them); an explicit HTTP `proxy=` (absolute-form requests for
    http://, a CONNECT tunnel for https://);
  * a reused connection that the server had closed (it answers nothing, not one byte) is
    retried once on a new connection for GET, HEAD and OPTIONS only: for any other method the
    server may have acted on the request, and the engine decides what to do;
  * errors become the httpx exceptions that say how far the request got:
      ConnectError / ConnectTimeout / PoolTimeout  the request was never sent,
      WriteTimeout / WriteError                    sending failed,
      ReadTimeout                                  sent, no answer in time,
      RemoteProtocolError                          the server closed the connection or
                                                   answered something that is not HTTP/1.1,
      ReadError                                    the connection failed while reading.

What it does not do: redirects, cookies, HTTP/2, proxies from the environment, or streaming
bodies in either direction (a streamed request body is read first and sent whole).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any

import httpx

from flowkit.connectors.http_wire import Answer, Connection, Origin, Silence, Stale

__all__ = ["Http11Transport", "as_response"]
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_TIMEOUTS: Mapping[str, Any] = {}


class _Pool:
    """At most `limit` connections in all; idle ones kept per origin, newest reused first."""

    def __init__(self, limit: int, keepalive_expiry: float) -> None:
        self.limit = limit
        self.keepalive_expiry = keepalive_expiry
        self.count = 0  # open connections: idle and in use
        self.idle: dict[Origin, list[Connection]] = {}
        self.waiters: deque[tuple[Origin, asyncio.Future[Connection | None]]] = deque()
        self.in_use: set[Connection] = set()
        self.closed = False

    async def acquire(self, origin: Origin, timeout: float | None) -> Connection | None:
        """An idle connection to `origin`, or None: a slot is reserved, connect a new one."""
        while True:
            found = self._idle(origin)
            if found is not None or self.count < self.limit:
                if found is None:
                    self.count += 1
                return found
            if self._evict_other():
                self.count += 1
                return None
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self.waiters.append((origin, waiter))
            try:
                async with asyncio.timeout(timeout):
                    handed = await waiter
            except (TimeoutError, asyncio.CancelledError) as exc:
                if waiter.done() and not waiter.cancelled():
                    # handed a connection (or a slot) in the same turn: pass it on, not lose it
                    given = waiter.result()
                    if given is None:
                        self._pass_on(None)
                    else:
                        self.in_use.discard(given)
                        self._pass_on(given)
                if isinstance(exc, TimeoutError):
                    raise httpx.PoolTimeout("timed out waiting for a free connection") from None
                raise
            if handed is not None or self.count < self.limit:
                if handed is None:
                    self.count += 1
                return handed

    def _idle(self, origin: Origin) -> Connection | None:
        stack = self.idle.get(origin)
        now = asyncio.get_running_loop().time()
        while stack:
            conn = stack.pop()
            if conn.usable and now - conn.idle_since < self.keepalive_expiry:
                self.in_use.add(conn)
                return conn
            conn.close()
            self.count -= 1
        return None

    def _evict_other(self) -> bool:
        """Close the oldest idle connection to another origin, freeing a slot."""
        oldest: Connection | None = None
        for stack in self.idle.values():
            if stack and (oldest is None or stack[0].idle_since < oldest.idle_since):
                oldest = stack[0]
        if oldest is None:
            return False
        self.idle[oldest.origin].remove(oldest)
        oldest.close()
        self.count -= 1
        return True

    def connected(self, conn: Connection) -> None:
        self.in_use.add(conn)

    def release(self, conn: Connection, *, reuse: bool) -> None:
        """Give a connection back after an exchange (or after failing to open one)."""
        self.in_use.discard(conn)
        if self.closed:
            conn.close()
            return
        if reuse and conn.usable:
            conn.idle_since = asyncio.get_running_loop().time()
            self._pass_on(conn)
        else:
            conn.close()
            self.count -= 1
            self._pass_on(None)

    def unreserve(self) -> None:
        """A reserved slot whose connection could not be opened."""
        if self.closed:
            return
        self.count -= 1
        self._pass_on(None)

    def _pass_on(self, conn: Connection | None) -> None:
        """Hand a free connection (or a free slot, None) to the first waiter that can use it."""
        while self.waiters:
            origin, waiter = self.waiters.popleft()
            if waiter.done():
                continue
            if conn is not None and conn.origin != origin:
                conn.close()
                self.count -= 1
                conn = None
            if conn is not None:
                self.in_use.add(conn)
            waiter.set_result(conn)
            return
        if conn is not None:
            self.idle.setdefault(conn.origin, []).append(conn)

    def close(self) -> None:
        self.closed = True
        for stack in self.idle.values():
            for conn in stack:
                conn.close()
        self.idle.clear()
        for conn in self.in_use:
            conn.close()
        self.in_use.clear()
        self.count = 0
        while self.waiters:
            _origin, waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(httpx.TransportError("the transport has been closed"))


_default_context: ssl.SSLContext | None = None


def _verified_context() -> ssl.SSLContext:
    # Built once per process: loading the system's CA certificates takes 10-30 ms.
    global _default_context
    if _default_context is None:
        _default_context = ssl.create_default_context()
    return _default_context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Http11Transport(httpx.AsyncBaseTransport):
    """httpx's transport interface: HTTP/1.1 keep-alive connections in one bounded pool."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 4.0,
        verify: bool | ssl.SSLContext = True,
        proxy: str | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._pool = _Pool(max_connections, keepalive_expiry)
        self._silence = Silence()
        self._closed = False
        self._proxy: Origin | None = None
        self._proxy_auth: bytes | None = None
        if proxy is not None:
            url = httpx.URL(proxy)
            if url.scheme != "http":
                raise ValueError(f"proxy {proxy!r}: only http:// proxies are supported")
            self._proxy = ("http", url.host, url.port or 80)
            if url.username:
                token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
                self._proxy_auth = f"Basic {token}".encode("ascii")

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl = self._verify
            else:
                self._ssl = _verified_context() if self._verify else _unverified_context()
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        spec = request.extensions.get("timeout")
        timeouts: Mapping[str, Any] = (
            spec if type(spec) is dict or isinstance(spec, Mapping) else _NO_TIMEOUTS
        )
        try:
            answer = await self.exchange(
                request.method, request.url, request.headers._list, body, timeouts
            )
        except httpx.TransportError as exc:
            exc.request = request
            raise
        return as_response(answer, request)

    async def exchange(
        self,
        method: str,
        url: httpx.URL,
        fields: list[tuple[bytes, bytes, bytes]],
        body: bytes,
        timeouts: Mapping[str, Any],
    ) -> Answer:
        """Send one request and return its answer: what `handle_async_request` does, without
        httpx's Request and Response objects (`HttpClient.fetch` calls this directly).
        `fields` are httpx's normalised (name, lower-case name, value) header fields;
        `timeouts` holds connect, read, write and pool seconds (None: no limit)."""
        if self._closed:
            raise httpx.TransportError("the transport has been closed")
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        host = url.host
        if not host:
            raise httpx.UnsupportedProtocol(f"no host in URL {str(url)!r}")
        origin = (scheme, host, url.port or _DEFAULT_PORTS[scheme])
        via_proxy = self._proxy is not None and scheme == "http"
        data = self._serialize(method, url, fields, body, absolute=via_proxy)
        key = self._proxy if via_proxy and self._proxy is not None else origin
        for attempt in (1, 2):
            conn = await self._pool.acquire(key, timeouts.get("pool"))
            if conn is None:
                conn = await self._open(key, origin, timeouts.get("connect"))
            try:
                answer = await conn.exchange(
                    data,
                    head_only=method == "HEAD",
                    write_timeout=timeouts.get("write"),
                    read_timeout=timeouts.get("read"),
                )
            except Stale:
                self._pool.release(conn, reuse=False)
                if attempt == 1 and method in _SAFE_METHODS:
                    continue
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response."
                ) from None
            except BaseException:  # failed or cancelled mid-exchange: the state is unknown
                self._pool.release(conn, reuse=False)
                raise
            self._pool.release(conn, reuse=answer.keep_alive)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _serialize(
        self,
        method: str,
        url: httpx.URL,
        fields: list[tuple[bytes, bytes, bytes]],
        body: bytes,
        *,
        absolute: bool,
    ) -> bytes:
        """The request's bytes: request line, header fields, body."""
        target = url.raw_path or b"/"
        if absolute:
            target = url.raw_scheme + b"://" + url.netloc + target
        parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        chunked = False
        for name, lower, value in fields:
            if lower == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
            parts += (name, b": ", value, b"\r\n")
        if absolute and self._proxy_auth is not None:
            parts += (b"Proxy-Authorization: ", self._proxy_auth, b"\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        # One line per field plus the request line and the blank line, and no other CR or LF:
        # a name, value or target holding one would smuggle a header or a second request.
        lines = len(fields) + (3 if absolute and self._proxy_auth is not None else 2)
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            raise httpx.LocalProtocolError("a header or the URL contains a line break")
        if chunked:  # a streamed body, read whole by now: send it as one chunk
            if body:
                return b"%s%x\r\n%s\r\n0\r\n\r\n" % (head, len(body), body)
            return head + b"0\r\n\r\n"
        return head + body

    async def _open(self, key: Origin, origin: Origin, timeout: float | None) -> Connection:
        """A new connection to `origin` (through the proxy when set), in the slot reserved
        under `key`: the origin itself, or the proxy for plain http:// requests through it."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        conn = Connection(key, self._silence)
        try:
            async with asyncio.timeout(timeout):
                if self._proxy is None:
                    tls = scheme == "https"
                    await loop.create_connection(
                        lambda: conn,
                        host,
                        port,
                        ssl=self._context() if tls else None,
                        server_hostname=host if tls else None,
                    )
                else:
                    _, proxy_host, proxy_port = self._proxy
                    await loop.create_connection(lambda: conn, proxy_host, proxy_port)
                    if scheme == "https":
                        await self._tunnel(conn, host, port, timeout)
        except TimeoutError:
            conn.close()
            self._pool.unreserve()
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except (OSError, ssl.SSLError, httpx.TransportError) as exc:
            conn.close()
            self._pool.unreserve()
            if isinstance(exc, httpx.TransportError):
                raise
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            conn.close()
            self._pool.unreserve()
            raise
        if self._closed:
            conn.close()
            self._pool.unreserve()
            raise httpx.TransportError("the transport has been closed")
        self._pool.connected(conn)
        return conn

    async def _tunnel(self, conn: Connection, host: str, port: int, timeout: float | None) -> None:
        """CONNECT through the proxy, then TLS to the origin over the tunnel."""
        authority = f"{host}:{port}".encode("idna")
        lines = [b"CONNECT " + authority + b" HTTP/1.1", b"Host: " + authority]
        if self._proxy_auth is not None:
            lines.append(b"Proxy-Authorization: " + self._proxy_auth)
        answer = await conn.exchange(
            b"\r\n".join([*lines, b"", b""]), head_only=True, write_timeout=None, read_timeout=None
        )
        if not 200 <= answer.status < 300:
            raise httpx.ConnectError(f"the proxy refused the tunnel: HTTP {answer.status}")
        conn.served = 0  # the tunnel is a fresh connection to the origin
        assert conn.transport is not None
        loop = asyncio.get_running_loop()
        secured = await loop.start_tls(conn.transport, conn, self._context(), server_hostname=host)
        if secured is None:  # pragma: no cover - only when the transport closed meanwhile
            raise httpx.ConnectError("the proxy closed the tunnel")
        conn.transport = secured

    async def aclose(self) -> None:
        self._closed = True
        self._pool.close()
        self._silence.close()


def as_response(answer: Answer, request: httpx.Request) -> httpx.Response:
    """The httpx response for an answer to `request` (httpx decodes any Content-Encoding)."""
    headers = httpx.Headers()
    headers._list = answer.headers
    content = answer.body
    response = httpx.Response(
        answer.status,
        headers=headers,
        stream=httpx.ByteStream(content),
        extensions={"http_version": answer.version, "reason_phrase": answer.reason},
        request=request,
    )
    if not answer.encoded:
        # Nothing to decode: hand the body over already read, as `aread()` would leave it
        # (its decoder and chunker machinery costs ~17 µs a response for no change).
        response._content = content
        response._num_bytes_downloaded = len(content)
        response.is_stream_consumed = True
        response.is_closed = True
    return response
