"""The HTTP layer every HTTP connector shares: one pooled client, classified errors.

`HttpClient` sends requests (httpx requests and auth flows, `Http11Transport` underneath by
default) and turns every failure into a `ConnectorError` whose `ErrorKind` drives the engine's
retries:

    connect error / connect timeout      TRANSIENT / TIMEOUT, maybe_sent=False
    read timeout                         TIMEOUT, maybe_sent=True
    connection dropped after sending     TRANSIENT, maybe_sent=True
    429                                  RATE_LIMITED, retry_after from Retry-After
    5xx                                  TRANSIENT (Retry-After honoured when present)
    401 / 403                            AUTH          404  NOT_FOUND      409  CONFLICT
    400 / 422                            VALIDATION    other 4xx (and 3xx)  PERMANENT

Messages read "HTTP 503 from POST /v1/charges: <the API's own message>": the path never
carries the query string and known secrets are masked. The layer never retries (the engine
does); the one exception is an OAuth2 flow refreshing its token once on a 401.

Importable from here too: `RateLimiter` and `TokenBucket` pacing (`http_pacing`), pagination
helpers with guards against cursors that do not advance and `next_link` for RFC 8288 `Link`
headers (`http_pages`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from flowkit import __version__, jsontext
from flowkit.connectors.auth import TOKEN_REQUEST, FlowkitAuth
from flowkit.connectors.base import Runtime, no_debug
from flowkit.connectors.http_pacing import RateLimiter, TokenBucket, parse_retry_after
from flowkit.connectors.http_pages import next_link, paginate_cursor, paginate_pages
from flowkit.connectors.http_reply import (
    Reply,
    default_error_message,
    fields_dict,
    header_dict,
    json_body,
    kind_for_status,
    raw_fields,
)
from flowkit.connectors.http_transport import Http11Transport, as_response
from flowkit.errors import ConnectorError, ErrorKind

if TYPE_CHECKING:
    import ssl

__all__ = [
    "HttpClient",
    "RateLimiter",
    "Reply",
    "TokenBucket",
    "default_error_message",
    "header_dict",
    "json_body",
    "kind_for_status",
    "next_link",
    "paginate_cursor",
    "paginate_pages",
    "parse_retry_after",
]

_MESSAGE_LIMIT = 300
_URL_CACHE_SIZE = 512
_SCALARS = (str, int, float, type(None))  # bool is an int
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _param_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def _encode_params(params: Any) -> str:
    """A query string from a mapping or (key, value) pairs; list values repeat the key; True,
    False and None become "true", "false" and "" (as httpx does)."""
    pairs: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, Mapping) else params
    for key, value in items:
        if isinstance(value, list | tuple):
            pairs.extend((str(key), _param_text(v)) for v in value)
        else:
            pairs.append((str(key), _param_text(value)))
    return urlencode(pairs)


_NOTHING: frozenset[str] = frozenset()
_JSON_TYPE = (b"Content-Type", b"content-type", b"application/json")


def _fields(headers: Mapping[str, str]) -> list[tuple[bytes, bytes, bytes]]:
    """httpx's normalised (name, lower-case name, value) form of the caller's headers, built
    directly for ASCII ones (a third of the cost of `httpx.Headers`)."""
    try:
        return [
            (name.encode("ascii"), name.lower().encode("ascii"), value.encode("ascii"))
            for name, value in headers.items()
        ]
    except (UnicodeEncodeError, AttributeError):  # non-ASCII, or not text: httpx decides
        return raw_fields(httpx.Headers(headers))


def _listens(debug: Callable[[str], None]) -> bool:
    """False when debug output is off (`base.no_debug`): the client then neither formats nor
    masks a line per request."""
    return debug is not no_debug


def _describe(method: str, url: httpx.URL) -> str:
    """How messages name a request: the method and the path, never the query string."""
    return f"{method} {url.path or '/'}"


class HttpClient:
    """A pooled HTTP client for one connection: auth, base URL, timeouts, pacing, errors."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_connections: int = 100,
        rate_limiter: RateLimiter | None = None,
        error_message: Callable[[httpx.Response], str] | None = None,
        classify: Callable[[httpx.Response, ErrorKind], ErrorKind] | None = None,
        runtime: Runtime | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "http",
        verify: bool | ssl.SSLContext = True,
        proxy: str | None = None,
    ) -> None:
        self.name = name
        self.base_url = httpx.URL(base_url) if base_url else httpx.URL("")
        if self.base_url.raw_path and not self.base_url.raw_path.endswith(b"/"):
            self.base_url = self.base_url.copy_with(raw_path=self.base_url.raw_path + b"/")
        self.auth = auth
        self.timeout = timeout
        self.rate_limiter = rate_limiter
        self._error_message = error_message or default_error_message
        self._classify = classify
        self._runtime = runtime
        if transport is None:  # (a transport given by a test brings its own TLS and proxy)
            transport = Http11Transport(max_connections=max_connections, verify=verify, proxy=proxy)
        self._transport = transport
        self._headers = httpx.Headers(
            {"User-Agent": f"flowkit/{__version__}", "Accept-Encoding": "gzip, deflate"}
        )
        self._headers.update(headers or {})
        # (lower-case name, httpx's (name, lower-case name, value) bytes) of each default header
        self._header_items = [
            (lower.decode("latin-1"), (k, lower, v)) for k, lower, v in raw_fields(self._headers)
        ]
        self._default = {name for name, _ in self._header_items}
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": None}
        self._secrets: list[str] = []
        self._base = str(self.base_url) if self.base_url.scheme else ""
        if self._base and not self._base.endswith("/"):
            self._base += "/"
        self._urls: dict[str, httpx.URL] = {}
        self._queries: dict[tuple[tuple[Any, type, Any], ...], str] = {}
        self._debug = runtime.debug if runtime is not None and _listens(runtime.debug) else None
        if isinstance(auth, FlowkitAuth):
            auth.attach(self.add_secret)

    # secrets ---------------------------------------------------------------------------
    def add_secret(self, value: str) -> None:
        """Mask `value` in this client's messages and in the host's output."""
        if not value or value in self._secrets:
            return
        self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)
        if self._runtime is not None:
            self._runtime.register_secret(value)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # requests --------------------------------------------------------------------------
    def build_request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """The request `request` would send (base URL, default headers, params, body)."""
        target = self._target(url, params)
        method = method.upper()
        if data is not None:  # form data: let httpx encode it
            merged = self._headers.copy()
            if headers:
                merged.update(headers)
            return httpx.Request(
                method,
                target,
                data=data,
                content=content,
                headers=merged,
                extensions={"timeout": self._timeouts},
            )
        fields, body = self._prepare(method, target, json, content, headers)
        ready = httpx.Headers()
        ready._list = fields
        request = httpx.Request(
            method,
            target,
            headers=ready,
            stream=httpx.ByteStream(body),
            extensions={"timeout": self._timeouts},
        )
        # `request.content` works as usual: what `read()` would set, without joining the stream
        request._content = body
        return request

    def _prepare(
        self,
        method: str,
        target: httpx.URL,
        json: Any,
        content: bytes | str | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[list[tuple[bytes, bytes, bytes]], bytes]:
        """The header fields, in httpx's normalised form, and the body of a request."""
        content_type: str | None = None
        if json is not None and content is None:
            # Encoded here rather than by httpx: same bytes, a fifth of the cost.
            content = jsontext.wire(json).encode()
            content_type = "application/json"
        body = content.encode() if isinstance(content, str) else (content or b"")
        # The headers httpx would add (Host, Content-Length) are set here so the request can
        # be built from a ready stream: a quarter of the cost of httpx encoding the body. The
        # default headers were normalised by httpx once, in __init__; the caller's are here.
        host = (b"Host", b"host", target.netloc)
        if headers:
            given: AbstractSet[str] = {k.lower() for k in headers}
            fields = [host, *(f for name, f in self._header_items if name not in given)]
            fields.extend(_fields(headers))
        else:
            given = _NOTHING
            fields = [host, *(f for _, f in self._header_items)]
        if content_type and "content-type" not in given and "content-type" not in self._default:
            fields.append(_JSON_TYPE)
        if "content-length" not in given and (body or method in _BODY_METHODS):
            length = str(len(body)).encode("ascii")
            fields.append((b"Content-Length", b"content-length", length))
        return fields, body

    def _target(self, url: str | httpx.URL, params: Any) -> httpx.URL:
        """The absolute URL: relative ones are appended to base_url's path; params are added
        to any query the URL already has. Parsed URLs are cached (parsing costs ~30 µs)."""
        text = str(url)
        if not text.startswith(("http://", "https://")):
            if not self._base:
                raise ValueError(f"relative URL {text!r} needs a base_url")
            text = self._base + text.lstrip("/")
        if params:
            query = self._query(params)
            if query:
                text += ("&" if "?" in text else "?") + query
        cached = self._urls.get(text)
        if cached is None:
            cached = httpx.URL(text)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[text] = cached
        return cached

    def _query(self, params: Any) -> str:
        """The encoded query string; repeated parameter sets (polls, pages) come from a cache."""
        if type(params) is not dict and not isinstance(params, Mapping):
            return _encode_params(params)
        # the type is part of the key: 1, 1.0 and True are equal but encode differently
        key = tuple((k, type(v), v) for k, v in params.items())
        if not all(isinstance(v, _SCALARS) for _, _, v in key):
            return _encode_params(params)
        found = self._queries.get(key)
        if found is None:
            found = _encode_params(params)
            if len(self._queries) >= _URL_CACHE_SIZE:
                self._queries.clear()
            self._queries[key] = found
        return found

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> httpx.Response:
        """Send a request and return its 2xx response; any other outcome raises a classified
        `ConnectorError` (with `check=False`, non-2xx responses are returned too)."""
        request = self.build_request(
            method, url, params=params, json=json, data=data, content=content, headers=headers
        )
        response = await self.send(request)
        if check and not response.is_success:
            raise self.error_for(response)
        return response

    async def fetch(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """`request` for the common case, answered as a `Reply`: the same request bytes, the
        same errors, the same debug line.

        With no auth flow and no rate limiter on flowkit's own transport (the generic `http`
        connector's usual case) the exchange skips httpx's Request and Response objects, about
        40 µs of CPU a request; a non-2xx or compressed answer still goes through httpx.
        Otherwise this is `request` with its response turned into a `Reply`."""
        transport = self._transport
        if (
            self.auth is not None
            or self.rate_limiter is not None
            or not isinstance(transport, Http11Transport)
        ):
            response = await self.request(method, url, params=params, json=json, headers=headers)
            return Reply.of(response)
        method = method.upper()
        target = self._target(url, params)
        fields, body = self._prepare(method, target, json, None, headers)

        def request() -> httpx.Request:  # for the paths that go through httpx after all
            return self.build_request(method, url, params=params, json=json, headers=headers)

        started = time.perf_counter()
        try:
            answer = await transport.exchange(method, target, fields, body, self._timeouts)
        except httpx.TransportError as exc:
            self._log(method, target, type(exc).__name__, started)
            raise self._transport_error(request(), exc) from None
        if answer.encoded or not 200 <= answer.status < 300:
            response = as_response(answer, request())
            await response.aread()
            self._log(method, target, str(answer.status), started)
            if not response.is_success:
                raise self.error_for(response)
            return Reply.of(response)
        self._log(method, target, str(answer.status), started)
        found = fields_dict(answer.headers)
        if found is None:  # a non-ASCII header value: decoded as httpx would
            return Reply.of(as_response(answer, request()))
        return Reply(answer.status, found, answer.body, method, target)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send a built request through auth, pacing and the transport; the body is read."""
        if self.auth is None:
            return await self._send_once(request)
        flow = self.auth.async_auth_flow(request)
        try:
            current = await flow.__anext__()
            while True:
                response = await self._send_once(current)
                try:
                    current = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        if self.rate_limiter is not None:
            await self.rate_limiter.acquire()
        started = time.perf_counter()
        try:
            response = await self._transport.handle_async_request(request)
            await response.aread()
        except httpx.TransportError as exc:
            self._log(request.method, request.url, type(exc).__name__, started)
            raise self._transport_error(request, exc) from None
        response.request = request
        if self.rate_limiter is not None:
            self.rate_limiter.observe(response)
        self._log(request.method, request.url, str(response.status_code), started)
        return response

    def _log(self, method: str, url: httpx.URL, outcome: str, started: float) -> None:
        if self._debug is None:
            return
        ms = (time.perf_counter() - started) * 1000
        where = _describe(method, url)
        self._debug(self.redact(f"{self.name}: {where} -> {outcome} ({ms:.1f} ms)"))

    def _transport_error(self, request: httpx.Request, exc: httpx.TransportError) -> ConnectorError:
        where = _describe(request.method, request.url)
        # A token request failing means the API request itself was never sent.
        token = bool(request.extensions.get(TOKEN_REQUEST))
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            kind, sent, what = ErrorKind.TIMEOUT, False, "connect timeout"
        elif isinstance(exc, httpx.TimeoutException):
            kind, sent, what = ErrorKind.TIMEOUT, True, "no response in time"
        elif isinstance(exc, httpx.ConnectError):
            kind, sent, what = ErrorKind.TRANSIENT, False, "cannot connect"
        elif isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            kind, sent, what = ErrorKind.PERMANENT, False, "invalid request"
        else:
            kind, sent, what = ErrorKind.TRANSIENT, True, "connection failed"
        if token:
            sent = False
        message = self.redact(f"{what} for {where} ({request.url.host}): {detail}")
        return ConnectorError(message, kind=kind, maybe_sent=sent)

    def error_for(self, response: httpx.Response) -> ConnectorError:
        """The classified `ConnectorError` for a non-2xx response."""
        status = response.status_code
        kind = kind_for_status(status)
        if self._classify is not None:
            kind = self._classify(response, kind)
        retry_after = None
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            detail = self._error_message(response)
        except Exception:  # a broken extractor must not hide the HTTP error itself
            detail = response.text
        detail = " ".join(detail.split())
        if len(detail) > _MESSAGE_LIMIT:
            detail = detail[: _MESSAGE_LIMIT - 3] + "..."
        if 300 <= status < 400 and "location" in response.headers:
            detail = f"redirected to {response.headers['location']}"
        where = _describe(response.request.method, response.request.url)
        message = self.redact(f"HTTP {status} from {where}: {detail}")
        return ConnectorError(message, kind=kind, status=status, retry_after=retry_after)

    def json(self, response: httpx.Response | Reply) -> Any:
        """The JSON body of a response, or ConnectorError(PERMANENT, "malformed JSON ...")."""
        try:
            return json_body(response.content)
        except ValueError as exc:
            if isinstance(response, Reply):
                method, url = response.method, response.url
            else:
                method, url = response.request.method, response.request.url
            raise ConnectorError(
                self.redact(f"malformed JSON from {_describe(method, url)}: {exc}"),
                kind=ErrorKind.PERMANENT,
                status=response.status_code,
                maybe_sent=method not in _SAFE_METHODS,
            ) from None

    async def request_json(self, method: str, url: str | httpx.URL, **kwargs: Any) -> Any:
        """`request` and then `json`."""
        return self.json(await self.request(method, url, **kwargs))

    async def get_json(self, url: str | httpx.URL, **kwargs: Any) -> Any:
        return await self.request_json("GET", url, **kwargs)

    async def post_json(self, url: str | httpx.URL, **kwargs: Any) -> Any:
        return await self.request_json("POST", url, **kwargs)

    async def put_json(self, url: str | httpx.URL, **kwargs: Any) -> Any:
        return await self.request_json("PUT", url, **kwargs)

    async def patch_json(self, url: str | httpx.URL, **kwargs: Any) -> Any:
        return await self.request_json("PATCH", url, **kwargs)

    async def delete_json(self, url: str | httpx.URL, **kwargs: Any) -> Any:
        return await self.request_json("DELETE", url, **kwargs)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
