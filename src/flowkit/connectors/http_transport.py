"""HTTP/1.1 over asyncio protocols, pooled: the transport under every HTTP connector.

httpx gives flowkit its API (requests, responses, `Auth` flows, `MockTransport` in tests, the
exception tree), but its default async transport (httpcore) slows down with the square of the
number of requests in flight (see /work/shared/notes/http-performance.md), and aiohttp's
client, which flowkit used before, spends about three times the CPU of the bytes themselves on
each request. This transport speaks HTTP/1.1 itself, on `asyncio.Protocol` connections: a
request is one `write`, and its response is parsed as it arrives, in `data_received`, so the
caller's task wakes up once, when the whole response is in.

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
import math
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["Http11Transport"]

_MAX_HEAD = 64 * 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_11 = b"HTTP/1.1"
_NO_TIMEOUTS: Mapping[str, Any] = {}

# How a response body ends.
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NO_BODY = range(4)
# Where the parser is.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _DONE = range(6)

Origin = tuple[str, str, int]


class _Stale(Exception):
    """A reused connection closed before one byte of the response arrived."""


class _Response:
    __slots__ = ("body", "encoded", "headers", "keep_alive", "reason", "status", "version")

    def __init__(self) -> None:
        self.status = 0
        self.reason = b""
        self.version = _HTTP_11
        self.headers: list[tuple[bytes, bytes, bytes]] = []
        self.body = b""
        self.keep_alive = True
        self.encoded = False


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: sends a request and parses its response as it arrives."""

    def __init__(self, origin: Origin, silence: _Silence) -> None:
        self.origin = origin
        self._silence = silence
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.served = 0  # responses completed on this connection
        self.idle_since = 0.0
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._waiter: asyncio.Future[_Response] | None = None
        self._response = _Response()
        self._state = _DONE
        self._framing = _NO_BODY
        self._remaining = 0
        self._parts: list[bytes] = []
        self._head_only = False
        self._received = False  # any byte of the current response
        self._last_read = 0.0
        self._read_timeout: float | None = None
        self._write_ready: asyncio.Future[None] | None = None
        self._paused = False

    # asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Nothing asked for: a server talking out of turn. Never reuse this connection.
            self.close()
            return
        self._received = True
        if self._read_timeout is not None:
            self._last_read = self._loop.time()
        self._buffer += data
        try:
            self._parse()
        except httpx.RemoteProtocolError as exc:
            self._fail(exc)
            self.close()

    def eof_received(self) -> bool | None:
        self._lost(None)
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)
        self.closed = True
        waiter, self._write_ready = self._write_ready, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(httpx.WriteError(str(exc or "connection closed")))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiter, self._write_ready = self._write_ready, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # the exchange -----------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def exchange(
        self,
        data: bytes,
        *,
        head_only: bool,
        write_timeout: float | None,
        read_timeout: float | None,
    ) -> _Response:
        """Send one request and return its parsed response."""
        assert self._waiter is None
        if not self.usable or self.transport is None:
            if self.served:
                raise _Stale()
            raise httpx.RemoteProtocolError("the connection closed before the request was sent")
        waiter: asyncio.Future[_Response] = self._loop.create_future()
        self._waiter = waiter
        self._response = _Response()
        self._state = _HEAD
        self._head_only = head_only
        self._received = False
        self._read_timeout = read_timeout
        self.transport.write(data)
        if self._paused and not self.closed:
            try:
                await self._drain(write_timeout)
            except BaseException:
                self._waiter = None
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()  # the send failed first: that is the error to report
                else:
                    waiter.cancel()
                raise
        watched = False
        if read_timeout is not None and not waiter.done():
            watched = True
            self._last_read = self._loop.time()
            self._silence.watch(self, self._last_read + read_timeout)
        try:
            response = await waiter
        finally:
            self._waiter = None
            if watched:
                self._silence.forget(self)
        self.served += 1
        return response

    async def _drain(self, timeout: float | None) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()
        self._write_ready = ready
        try:
            async with asyncio.timeout(timeout):
                await ready
        except TimeoutError:
            self.close()
            raise httpx.WriteTimeout("timed out sending the request") from None

    def read_due(self) -> float:
        """When the read timeout expires if nothing more arrives."""
        return self._last_read + (self._read_timeout or 0.0)

    def timed_out(self) -> None:
        self._fail(httpx.ReadTimeout("timed out waiting for the response"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._state = _DONE

    def _lost(self, exc: Exception | None) -> None:
        """The connection ended (EOF or error): finish or fail the response being read."""
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._state == _BODY and self._framing == _UNTIL_CLOSE:
            self._finish(b"".join([*self._parts, bytes(self._buffer)]))
            self._buffer.clear()
            return
        if not self._received and self.served:
            waiter.set_exception(_Stale())
        elif isinstance(exc, OSError):
            waiter.set_exception(httpx.ReadError(str(exc) or type(exc).__name__))
        else:
            waiter.set_exception(
                httpx.RemoteProtocolError(
                    "Server disconnected without sending a complete response."
                )
            )
        self._state = _DONE

    # parsing ----------------------------------------------------------------------------
    def _parse(self) -> None:
        buffer = self._buffer
        while self._state != _DONE:
            state = self._state
            if state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > _MAX_HEAD:
                        raise httpx.RemoteProtocolError("response header section too large")
                    return
                head = bytes(buffer[:end])
                del buffer[: end + 4]
                self._head(head)
            elif state == _BODY:
                if self._framing == _UNTIL_CLOSE:
                    if buffer:
                        self._parts.append(bytes(buffer))
                        buffer.clear()
                    return
                if len(buffer) < self._remaining:
                    return
                body = bytes(buffer[: self._remaining])
                del buffer[: self._remaining]
                self._finish(body)
            elif state == _CHUNK_SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > _MAX_HEAD:
                        raise httpx.RemoteProtocolError("malformed chunk size line")
                    return
                line = bytes(buffer[:end]).split(b";", 1)[0].strip()
                del buffer[: end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise httpx.RemoteProtocolError(f"malformed chunk size {line!r}") from None
                if size < 0:
                    raise httpx.RemoteProtocolError(f"malformed chunk size {line!r}")
                self._remaining = size
                self._state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_DATA:
                if len(buffer) < self._remaining + 2:
                    return
                if buffer[self._remaining : self._remaining + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
                self._parts.append(bytes(buffer[: self._remaining]))
                del buffer[: self._remaining + 2]
                self._state = _CHUNK_SIZE
            else:  # _TRAILER: header lines up to an empty one, ignored
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > _MAX_HEAD:
                        raise httpx.RemoteProtocolError("response trailer section too large")
                    return
                del buffer[: end + 2]
                if end == 0:
                    self._finish(b"".join(self._parts))
        if buffer:
            # Bytes after a complete response: not ours to guess at. Never reuse.
            self._response.keep_alive = False
            buffer.clear()

    def _head(self, head: bytes) -> None:
        """The status line and header section of a response; sets up reading its body."""
        lines = head.split(b"\r\n")
        status_line = lines[0]
        version, _, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise httpx.RemoteProtocolError(f"malformed status line {status_line[:80]!r}")
        status = int(code)
        headers: list[tuple[bytes, bytes, bytes]] = []
        length: bytes | None = None
        transfer: bytes | None = None
        connection = b""
        encoded = False
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                if not headers:
                    raise httpx.RemoteProtocolError("malformed header section")
                name, lower, value = headers[-1]
                headers[-1] = (name, lower, value + b" " + line.strip(b" \t"))
                continue
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}")
            value = value.strip(b" \t")
            lower = name.lower()
            headers.append((name, lower, value))
            if lower == b"content-length":
                if length is not None and length != value:
                    raise httpx.RemoteProtocolError("conflicting Content-Length headers")
                length = value
            elif lower == b"transfer-encoding":
                transfer = value if transfer is None else transfer + b"," + value
            elif lower == b"connection":
                connection += b"," + value.lower()
            elif lower == b"content-encoding":
                encoded = True
        if 100 <= status < 200:
            if status == 101:
                raise httpx.RemoteProtocolError("the server switched protocols unasked")
            return  # an interim response: the final one follows
        response = self._response
        response.status = status
        response.reason = reason
        response.version = version
        response.headers = headers
        response.encoded = encoded
        tokens = {t.strip() for t in connection.split(b",")}
        if version == _HTTP_11:
            response.keep_alive = b"close" not in tokens
        else:
            response.keep_alive = b"keep-alive" in tokens
        self._parts = []
        if self._head_only or status in (204, 304):
            self._finish(b"")
        elif transfer is not None:
            codings = [t.strip().lower() for t in transfer.split(b",")]
            if length is not None:
                response.keep_alive = False  # both framings: a smuggling risk, never reuse
            if codings[-1] == b"chunked":
                self._state = _CHUNK_SIZE
            else:
                self._framing = _UNTIL_CLOSE
                self._state = _BODY
                response.keep_alive = False
        elif length is not None:
            value = length.split(b",")[0].strip()
            if not value.isdigit() or any(v.strip() != value for v in length.split(b",")):
                raise httpx.RemoteProtocolError(f"malformed Content-Length {length[:40]!r}")
            self._remaining = int(value)
            if self._remaining == 0:
                self._finish(b"")
            else:
                self._framing = _LENGTH
                self._state = _BODY
        else:
            self._framing = _UNTIL_CLOSE
            self._state = _BODY
            response.keep_alive = False

    def _finish(self, body: bytes) -> None:
        self._response.body = body
        self._state = _DONE
        self._framing = _NO_BODY
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._response)


class _Silence:
    """The read timeouts of all of a transport's connections, kept by one timer.

    A timer per request costs a heap push and a cancelled entry in the event loop's heap
    (whose ordering runs Python code); here the timer is moved only when a request's deadline
    comes before the one set. When it fires it fails the connections silent for their whole
    read timeout and sets itself for the nearest deadline left.
    """

    def __init__(self) -> None:
        self.waiting: set[_Connection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf

    def watch(self, conn: _Connection, deadline: float) -> None:
        self.waiting.add(conn)
        if deadline < self._due:
            if self._timer is not None:
                self._timer.cancel()
            self._due = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline, self._sweep)

    def forget(self, conn: _Connection) -> None:
        self.waiting.discard(conn)

    def _sweep(self) -> None:
        self._timer = None
        self._due = math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        nearest = math.inf
        for conn in list(self.waiting):
            due = conn.read_due()
            if now >= due - 0.001:  # the loop's clock resolution
                self.waiting.discard(conn)
                conn.timed_out()
            elif due < nearest:
                nearest = due
        if nearest < math.inf:
            self._due = nearest
            self._timer = loop.call_at(nearest, self._sweep)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due = math.inf
        self.waiting.clear()


class _Pool:
    """At most `limit` connections in all; idle ones kept per origin, newest reused first."""

    def __init__(self, limit: int, keepalive_expiry: float) -> None:
        self.limit = limit
        self.keepalive_expiry = keepalive_expiry
        self.count = 0  # open connections: idle and in use
        self.idle: dict[Origin, list[_Connection]] = {}
        self.waiters: deque[tuple[Origin, asyncio.Future[_Connection | None]]] = deque()
        self.in_use: set[_Connection] = set()
        self.closed = False

    async def acquire(self, origin: Origin, timeout: float | None) -> _Connection | None:
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
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
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

    def _idle(self, origin: Origin) -> _Connection | None:
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
        oldest: _Connection | None = None
        for stack in self.idle.values():
            if stack and (oldest is None or stack[0].idle_since < oldest.idle_since):
                oldest = stack[0]
        if oldest is None:
            return False
        self.idle[oldest.origin].remove(oldest)
        oldest.close()
        self.count -= 1
        return True

    def connected(self, conn: _Connection) -> None:
        self.in_use.add(conn)

    def release(self, conn: _Connection, *, reuse: bool) -> None:
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

    def _pass_on(self, conn: _Connection | None) -> None:
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
        self._silence = _Silence()
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
        if self._closed:
            raise httpx.TransportError("the transport has been closed")
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        host = url.host
        if not host:
            raise httpx.UnsupportedProtocol(f"no host in URL {str(url)!r}")
        origin = (scheme, host, url.port or _DEFAULT_PORTS[scheme])
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        spec = request.extensions.get("timeout")
        timeouts: Mapping[str, Any] = (
            spec if type(spec) is dict or isinstance(spec, Mapping) else _NO_TIMEOUTS
        )
        via_proxy = self._proxy is not None and scheme == "http"
        data = self._serialize(request, body, absolute=via_proxy)
        method = request.method
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
            except _Stale:
                self._pool.release(conn, reuse=False)
                if attempt == 1 and method in _SAFE_METHODS:
                    continue
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            except httpx.TransportError as exc:
                self._pool.release(conn, reuse=False)
                exc.request = request
                raise
            except BaseException:  # cancelled mid-exchange: the connection's state is unknown
                self._pool.release(conn, reuse=False)
                raise
            self._pool.release(conn, reuse=answer.keep_alive)
            return _response(answer, request)
        raise AssertionError("unreachable")  # pragma: no cover

    def _serialize(self, request: httpx.Request, body: bytes, *, absolute: bool) -> bytes:
        """The request's bytes: request line, header fields, body."""
        url = request.url
        target = url.raw_path or b"/"
        if absolute:
            target = url.raw_scheme + b"://" + url.netloc + target
        parts = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        chunked = False
        fields = request.headers._list
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

    async def _open(self, key: Origin, origin: Origin, timeout: float | None) -> _Connection:
        """A new connection to `origin` (through the proxy when set), in the slot reserved
        under `key`: the origin itself, or the proxy for plain http:// requests through it."""
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        conn = _Connection(key, self._silence)
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

    async def _tunnel(self, conn: _Connection, host: str, port: int, timeout: float | None) -> None:
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
        assert isinstance(secured, asyncio.Transport)
        conn.transport = secured

    async def aclose(self) -> None:
        self._closed = True
        self._pool.close()
        self._silence.close()


def _response(answer: _Response, request: httpx.Request) -> httpx.Response:
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
