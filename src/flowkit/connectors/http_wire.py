"""One HTTP/1.1 connection as an asyncio protocol: it writes a request and parses the response.

The response is parsed in `data_received` as bytes arrive, so the task waiting for it wakes
once, when the whole response is in: status line, header fields, then the body framed by
Content-Length, chunked transfer coding or the end of the connection (RFC 9112 section 6).
`Silence` keeps the read timeouts of every connection of a transport with one timer.
`flowkit.connectors.http_transport` pools these connections behind httpx's transport API.
"""

from __future__ import annotations

import asyncio
import math
from typing import cast

import httpx

__all__ = ["Answer", "Connection", "Origin", "Silence", "Stale"]

_MAX_HEAD = 64 * 1024
_HTTP_11 = b"HTTP/1.1"

# How a response body ends.
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NO_BODY = range(4)
# Where the parser is.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _DONE = range(6)

Origin = tuple[str, str, int]
"""(scheme, host, port): what a pooled connection leads to."""


class Stale(Exception):
    """A reused connection closed before one byte of the response arrived."""


class Answer:
    __slots__ = ("body", "encoded", "headers", "keep_alive", "reason", "status", "version")

    def __init__(self) -> None:
        self.status = 0
        self.reason = b""
        self.version = _HTTP_11
        self.headers: list[tuple[bytes, bytes, bytes]] = []
        self.body = b""
        self.keep_alive = True
        self.encoded = False


_READ_SIZE = 64 * 1024


class Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection: sends a request and parses its response as it arrives.

    A buffered protocol: the event loop reads into this connection's own buffer with
    `recv_into`. For a plain protocol it calls `recv(256 KiB)`, which allocates that much for
    every read and shrinks it; in a `flowkit run` that read was 9.7 % of the event loop's
    samples, against 3.3 % for `recv_into` (py-spy, the HTTP benchmark's recipe).
    """

    def __init__(self, origin: Origin, silence: Silence) -> None:
        self.origin = origin
        self._silence = silence
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.served = 0  # responses completed on this connection
        self.idle_since = 0.0
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._read_into = memoryview(bytearray(_READ_SIZE))
        self._waiter: asyncio.Future[Answer] | None = None
        self._response = Answer()
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
        # Not an isinstance check: other event loops' transports (uvloop's) have the same
        # methods without deriving from asyncio's classes.
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_into

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_into[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
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
    ) -> Answer:
        """Send one request and return its parsed response."""
        assert self._waiter is None
        if not self.usable or self.transport is None:
            if self.served:
                raise Stale()
            raise httpx.RemoteProtocolError("the connection closed before the request was sent")
        waiter: asyncio.Future[Answer] = self._loop.create_future()
        self._waiter = waiter
        self._response = Answer()
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
            waiter.set_exception(Stale())
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
                head = _take(buffer, b"\r\n\r\n", "response header section too large")
                if head is None:
                    return
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
                taken = _take(buffer, b"\r\n", "malformed chunk size line")
                if taken is None:
                    return
                line = taken.split(b";", 1)[0].strip()
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
                field = _take(buffer, b"\r\n", "response trailer section too large")
                if field is None:
                    return
                if not field:
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


def _take(buffer: bytearray, separator: bytes, too_long: str) -> bytes | None:
    """The bytes before `separator`, removed from `buffer` with it; None while it has not
    arrived, and RemoteProtocolError(`too_long`) once more than 64 KiB wait for it."""
    end = buffer.find(separator)
    if end < 0:
        if len(buffer) > _MAX_HEAD:
            raise httpx.RemoteProtocolError(too_long)
        return None
    taken = bytes(buffer[:end])
    del buffer[: end + len(separator)]
    return taken


class Silence:
    """The read timeouts of all of a transport's connections, kept by one timer.

    A timer per request costs a heap push and a cancelled entry in the event loop's heap
    (whose ordering runs Python code); here the timer is moved only when a request's deadline
    comes before the one set. When it fires it fails the connections silent for their whole
    read timeout and sets itself for the nearest deadline left.
    """

    def __init__(self) -> None:
        self.waiting: set[Connection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf

    def watch(self, conn: Connection, deadline: float) -> None:
        self.waiting.add(conn)
        if deadline < self._due:
            if self._timer is not None:
                self._timer.cancel()
            self._due = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline, self._sweep)

    def forget(self, conn: Connection) -> None:
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
