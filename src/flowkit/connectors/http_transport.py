"""An httpx transport that sends requests through an aiohttp `ClientSession`.

httpx gives flowkit its API (requests, responses, `Auth` flows, `MockTransport` in tests, the
exception tree), but its default async transport (httpcore) slows down with the square of the
number of requests in flight (see /work/shared/notes/http-performance.md). This transport keeps
the httpx API and does the I/O with aiohttp's connection pool (`TCPConnector(limit=...)`).

What it does and does not do:
  * bodies are read whole before the response is returned (connectors exchange small JSON
    documents); the raw bytes are handed to httpx, which decodes `Content-Encoding` itself;
  * no redirects, no cookies, no proxy or .netrc from the environment: the caller decides
    those (`proxy=` names an HTTP proxy explicitly);
  * the per-request timeouts httpx puts in `request.extensions["timeout"]` are honoured
    (connect, read; pool as a bound on waiting for a free connection);
  * aiohttp errors become the httpx exceptions that say what happened to the request:
      ConnectError / ConnectTimeout  the request was never sent,
      ReadTimeout                    sent, no answer in time,
      RemoteProtocolError            the server closed the connection or answered garbage,
      ReadError / WriteError         the connection failed while in use.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

__all__ = ["AiohttpTransport"]

_URL_CACHE_SIZE = 512
_SKIP_AUTO_HEADERS = frozenset({"Content-Type", "User-Agent", "Accept-Encoding", "Accept"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface on top of one aiohttp session with a bounded pool."""

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
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl: bool | ssl.SSLContext = verify
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session belongs to the running event loop.
        if self._session is None:
            if self._closed:
                raise httpx.TransportError("the transport has been closed")
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=_SKIP_AUTO_HEADERS,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._get_session()
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        timeout = self._timeout(request.extensions.get("timeout"))
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
        )
        text = str(request.url)
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[text] = URL(text, encoded=True)
        try:
            async with session.request(
                request.method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
                compress=None,
                proxy=self._proxy,
            ) as resp:
                content = await resp.read()
                status = resp.status
                raw_headers = resp.raw_headers
                version = resp.version
                reason = resp.reason or ""
                encoded = "Content-Encoding" in resp.headers
        except aiohttp.ClientError as exc:
            raise _map_error(exc, request) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out waiting for the response", request=request) from exc
        response = httpx.Response(
            status,
            headers=raw_headers,
            stream=httpx.ByteStream(content),
            extensions={
                "http_version": _http_version(version),
                "reason_phrase": reason.encode("latin-1", "replace"),
            },
            request=request,
        )
        if not encoded:
            # Nothing to decode: hand the body over already read, as `aread()` would leave it
            # (its decoder and chunker machinery costs ~17 µs a response for no change).
            response._content = content
            response._num_bytes_downloaded = len(content)
            response.is_stream_consumed = True
            response.is_closed = True
        return response

    def _timeout(self, spec: Any) -> aiohttp.ClientTimeout:
        if not isinstance(spec, Mapping):
            return _NO_TIMEOUT
        key = (spec.get("connect"), spec.get("read"), spec.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = _client_timeout(spec)
        return found

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
_HTTP_11 = b"HTTP/1.1"


def _http_version(version: aiohttp.HttpVersion | None) -> bytes:
    if version is None or version == (1, 1):
        return _HTTP_11
    return f"HTTP/{version.major}.{version.minor}".encode("ascii")


def _client_timeout(spec: Mapping[str, Any]) -> aiohttp.ClientTimeout:
    connect = spec.get("connect")
    read = spec.get("read")
    pool = spec.get("pool")
    # aiohttp's `connect` bounds waiting for a pooled connection plus establishing a new one.
    acquire = None if pool is None else pool + (connect or 0.0)
    return aiohttp.ClientTimeout(total=None, connect=acquire, sock_connect=connect, sock_read=read)


def _map_error(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception that says how far the request got."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(
            "Server disconnected without sending a complete response.", request=request
        )
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return httpx.WriteError(text, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ReadError(text, request=request)
    return httpx.TransportError(text, request=request)
