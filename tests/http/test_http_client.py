"""Unit tests of the shared HTTP layer with httpx.MockTransport (no sockets)."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowkit.connectors.http_client import (
    HttpClient,
    TokenBucket,
    header_dict,
    json_body,
    next_link,
    paginate_cursor,
    paginate_pages,
    parse_retry_after,
)
from flowkit.errors import ConnectorError, ErrorKind

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, **kwargs: Any) -> HttpClient:
    return HttpClient(
        "https://api.example.test/v1", transport=httpx.MockTransport(handler), **kwargs
    )


async def error_of(client: HttpClient, method: str = "GET", url: str = "/things") -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        await client.request(method, url)
    return info.value


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ErrorKind.VALIDATION),
        (401, ErrorKind.AUTH),
        (403, ErrorKind.AUTH),
        (404, ErrorKind.NOT_FOUND),
        (405, ErrorKind.PERMANENT),
        (409, ErrorKind.CONFLICT),
        (410, ErrorKind.PERMANENT),
        (422, ErrorKind.VALIDATION),
        (429, ErrorKind.RATE_LIMITED),
        (500, ErrorKind.TRANSIENT),
        (502, ErrorKind.TRANSIENT),
        (503, ErrorKind.TRANSIENT),
    ],
)
async def test_status_classification(status: int, kind: ErrorKind) -> None:
    client = client_for(lambda r: httpx.Response(status, json={"message": "nope"}))
    err = await error_of(client, "POST", "/charges?secret=1")
    assert err.kind is kind
    assert err.status == status
    assert err.maybe_sent is False
    assert str(err) == f"HTTP {status} from POST /v1/charges: nope"


async def test_success_returns_response_and_merges_base_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client = client_for(handler, headers={"X-Shop": "demo"})
    assert await client.get_json("things", params={"a": "1"}) == {"ok": True}
    assert str(seen[0].url) == "https://api.example.test/v1/things?a=1"
    assert seen[0].headers["X-Shop"] == "demo"
    assert seen[0].headers["User-Agent"].startswith("flowkit/")


async def test_absolute_url_is_used_as_is() -> None:
    seen: list[str] = []
    client = client_for(lambda r: seen.append(str(r.url)) or httpx.Response(204))
    await client.request("GET", "https://other.test/x?page=2")
    assert seen == ["https://other.test/x?page=2"]


async def test_api_message_is_extracted_from_common_shapes() -> None:
    bodies: list[Any] = [
        {"error": {"type": "invalid_request_error", "message": "No such charge"}},
        {"errors": [{"code": "x", "message": "Quantity must be positive"}]},
        {"detail": "Bad cursor"},
        "plain text answer",
    ]
    expected = ["No such charge", "Quantity must be positive", "Bad cursor", "plain text answer"]
    for body, text in zip(bodies, expected, strict=True):
        if isinstance(body, str):
            client = client_for(lambda r, b=body: httpx.Response(400, text=b))
        else:
            client = client_for(lambda r, b=body: httpx.Response(400, json=b))
        assert str(await error_of(client)).endswith(": " + text)


async def test_custom_error_message_and_classify_hooks() -> None:
    def message(resp: httpx.Response) -> str:
        return "custom: " + resp.json()["fault"]

    def classify(resp: httpx.Response, kind: ErrorKind) -> ErrorKind:
        return ErrorKind.CONFLICT if resp.json()["fault"] == "dup" else kind

    client = client_for(
        lambda r: httpx.Response(400, json={"fault": "dup"}),
        error_message=message,
        classify=classify,
    )
    err = await error_of(client)
    assert err.kind is ErrorKind.CONFLICT
    assert str(err) == "HTTP 400 from GET /v1/things: custom: dup"


async def test_429_retry_after_seconds() -> None:
    client = client_for(lambda r: httpx.Response(429, headers={"Retry-After": "7"}, text="slow"))
    err = await error_of(client)
    assert err.kind is ErrorKind.RATE_LIMITED
    assert err.retry_after == 7.0


async def test_503_retry_after_http_date() -> None:
    when = email.utils.formatdate(2_000_000_030, usegmt=True)
    assert parse_retry_after(when, now=2_000_000_000) == pytest.approx(30.0)
    client = client_for(lambda r: httpx.Response(503, headers={"Retry-After": "120"}))
    err = await error_of(client)
    assert err.kind is ErrorKind.TRANSIENT
    assert err.retry_after == 120.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=2_000_000_000) == expected


async def test_404_without_retry_after_has_none() -> None:
    err = await error_of(client_for(lambda r: httpx.Response(404, headers={"Retry-After": "5"})))
    assert err.kind is ErrorKind.NOT_FOUND
    assert err.retry_after is None


async def test_malformed_json_on_2xx() -> None:
    client = client_for(lambda r: httpx.Response(200, text="<html>oops"))
    with pytest.raises(ConnectorError) as info:
        await client.get_json("/x?token=abc")
    assert info.value.kind is ErrorKind.PERMANENT
    assert str(info.value).startswith("malformed JSON from GET /v1/x: ")
    assert info.value.maybe_sent is False
    with pytest.raises(ConnectorError) as info:
        await client.post_json("/x", json={})
    assert info.value.maybe_sent is True  # the write may have happened


@pytest.mark.parametrize(
    ("exc", "kind", "maybe_sent"),
    [
        (httpx.ConnectError("refused"), ErrorKind.TRANSIENT, False),
        (httpx.ConnectTimeout("slow connect"), ErrorKind.TIMEOUT, False),
        (httpx.ReadTimeout("slow answer"), ErrorKind.TIMEOUT, True),
        (httpx.RemoteProtocolError("dropped"), ErrorKind.TRANSIENT, True),
        (httpx.ReadError("reset"), ErrorKind.TRANSIENT, True),
        (httpx.UnsupportedProtocol("ftp"), ErrorKind.PERMANENT, False),
    ],
)
async def test_transport_errors(exc: Exception, kind: ErrorKind, maybe_sent: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    err = await error_of(client_for(handler), "POST", "/charges")
    assert (err.kind, err.maybe_sent) == (kind, maybe_sent)
    assert "POST /v1/charges" in str(err)


async def test_debug_log_masks_secrets(runtime: Any) -> None:
    from flowkit.connectors.auth import BearerAuth

    client = client_for(
        lambda r: httpx.Response(200, json={}), auth=BearerAuth("tok-SECRET"), runtime=runtime
    )
    client.add_secret("hooks/T1/SECRETPATH")
    await client.request("GET", "/hooks/T1/SECRETPATH?x=1")
    assert "tok-SECRET" in runtime.secrets
    assert len(runtime.lines) == 1
    line = runtime.lines[0]
    assert line.startswith("http: GET /v1/*** -> 200 (")
    assert "SECRET" not in line and "x=1" not in line


async def test_check_false_returns_error_responses() -> None:
    client = client_for(lambda r: httpx.Response(404, text="gone"))
    response = await client.request("GET", "/x", check=False)
    assert response.status_code == 404


# rate limiting -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_token_bucket_paces_after_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await bucket.acquire()
    assert clock.sleeps == []
    await bucket.acquire()
    assert clock.sleeps == [pytest.approx(0.5)]
    await bucket.acquire()
    assert clock.sleeps[-1] == pytest.approx(0.5)
    clock.now += 10  # idle: refills up to the burst only
    assert bucket.tokens == pytest.approx(3)


async def test_token_bucket_concurrent_reservations_queue() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=1, clock=clock, sleep=clock.sleep)
    await bucket.acquire()
    # three callers arrive at the same instant: they wait 0.1, 0.2, 0.3 s
    clock_sleeps = clock.sleeps
    for _ in range(3):
        clock.now = 100.0
        await bucket.acquire()
    assert clock_sleeps == [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.3)]


async def test_token_bucket_observes_429_retry_after() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=5, clock=clock, sleep=clock.sleep)
    bucket.observe(httpx.Response(429, headers={"Retry-After": "2"}))
    await bucket.acquire()
    assert clock.sleeps == [pytest.approx(2.2)]  # 2 s pause, then one token at 5/s


async def test_client_uses_rate_limiter() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    client = client_for(lambda r: httpx.Response(200), rate_limiter=bucket)
    await client.request("GET", "/a")
    await client.request("GET", "/b")
    assert clock.sleeps == [pytest.approx(1.0)]


def test_token_bucket_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0, 1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1, 0)


# pagination ----------------------------------------------------------------------------------


async def test_paginate_cursor_follows_until_none() -> None:
    pages = {None: ([1, 2], "b"), "b": ([3], "c"), "c": ([4], None)}
    calls: list[str | None] = []

    async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
        calls.append(cursor)
        return pages[cursor]

    assert [i async for i in paginate_cursor(fetch)] == [1, 2, 3, 4]
    assert calls == [None, "b", "c"]


async def test_paginate_cursor_guards_repeated_cursor() -> None:
    async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
        return [cursor], "same"

    with pytest.raises(ConnectorError, match="pagination did not advance") as info:
        [i async for i in paginate_cursor(fetch)]
    assert info.value.kind is ErrorKind.PERMANENT


async def test_paginate_cursor_guards_cycles_and_max_pages() -> None:
    cycle = {None: "a", "a": "b", "b": "a"}

    async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
        return [], cycle[cursor]

    with pytest.raises(ConnectorError, match="did not advance"):
        [i async for i in paginate_cursor(fetch)]

    async def endless(cursor: str | None) -> tuple[list[Any], str | None]:
        return [cursor], str(int(cursor or 0) + 1)

    with pytest.raises(ConnectorError, match="within 5 pages"):
        [i async for i in paginate_cursor(endless, max_pages=5)]


async def test_paginate_pages() -> None:
    data = {1: ([1, 2], True), 2: ([3], False)}

    async def fetch(page: int) -> tuple[list[Any], bool]:
        return data[page]

    assert [i async for i in paginate_pages(fetch)] == [1, 2, 3]


async def test_paginate_pages_guards() -> None:
    async def ignores_page(page: int) -> tuple[list[Any], bool]:
        return [1, 2], True

    with pytest.raises(ConnectorError, match="repeats the previous page"):
        [i async for i in paginate_pages(ignores_page)]

    async def empty_but_more(page: int) -> tuple[list[Any], bool]:
        return [], True

    with pytest.raises(ConnectorError, match="page 0 is empty"):
        [i async for i in paginate_pages(empty_but_more, start=0)]


def test_next_link() -> None:
    request = httpx.Request("GET", "https://shop.test/api/orders?page=1")
    link = (
        '<https://shop.test/api/orders?page=1>; rel="prev first", '
        "</api/orders?page=3&per_page=2>; rel=next, <x>; title=\"a;b\"; rel='last'"
    )
    response = httpx.Response(200, headers={"Link": link}, request=request)
    assert next_link(response) == "https://shop.test/api/orders?page=3&per_page=2"
    assert next_link(httpx.Response(200, request=request)) is None
    only_prev = httpx.Response(200, headers={"Link": '<a>; rel="prev"'}, request=request)
    assert next_link(only_prev) is None
    shopify = (
        '<https://s.test/p.json?page_info=abc>; rel="previous", '
        '<https://s.test/p.json?page_info=def>; rel="next"'
    )
    assert next_link(httpx.Response(200, headers={"link": shopify}, request=request)) == (
        "https://s.test/p.json?page_info=def"
    )


def test_json_helper_keeps_body() -> None:
    response = httpx.Response(
        200,
        content=json.dumps({"a": [1]}).encode(),
        request=httpx.Request("GET", "https://x.test/"),
    )
    assert HttpClient("https://x.test").json(response) == {"a": [1]}


def test_build_request_headers_and_body() -> None:
    client = HttpClient("https://api.example.test/v1", headers={"Accept": "application/json"})
    request = client.build_request(
        "post", "orders", json={"a": 1}, headers={"accept": "text/csv", "X-Req": "1"}
    )
    assert request.method == "POST"
    assert request.headers.get_list("accept") == ["text/csv"]
    assert request.headers["Host"] == "api.example.test"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Content-Length"] == "7"
    assert request.content == b'{"a":1}'
    typed = client.build_request("PUT", "x", content="a,b", headers={"Content-Type": "text/csv"})
    assert typed.headers.get_list("content-type") == ["text/csv"]
    empty = client.build_request("POST", "x")
    assert empty.headers["Content-Length"] == "0" and empty.content == b""
    get = client.build_request("GET", "x")
    assert "Content-Length" not in get.headers and "Content-Type" not in get.headers
    form = client.build_request("POST", "x", data={"a": "1"})
    assert form.content == b"a=1"
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_relative_url_needs_base_url() -> None:
    with pytest.raises(ValueError, match="needs a base_url"):
        HttpClient("").build_request("GET", "/x")


def test_query_encoding_and_its_cache_keep_types_apart() -> None:
    client = HttpClient("https://api.example.test/")
    urls = [
        str(client.build_request("GET", "x", params=p).url)
        for p in ({"a": 1}, {"a": True}, {"a": 1.0}, {"a": None}, {"a": 1}, {"a": ["x", "y"]})
    ]
    base = "https://api.example.test/x?"
    assert urls == [base + q for q in ("a=1", "a=true", "a=1.0", "a=", "a=1", "a=x&a=y")]
    pairs = client.build_request("GET", "x?z=0", params=[("created[gt]", 5), ("b", "c d")])
    assert str(pairs.url) == base + "z=0&created%5Bgt%5D=5&b=c+d"


def test_header_dict_matches_httpx_items() -> None:
    raw = [
        (b"Content-Type", b"application/json"),
        (b"Set-Cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"X-Note", b"plain"),
    ]
    response = httpx.Response(200, headers=raw)
    assert header_dict(response) == dict(response.headers.items())
    assert header_dict(response)["set-cookie"] == "a=1, b=2"
    latin = httpx.Response(200, headers=[(b"X-Name", "Zoë".encode())])
    assert header_dict(latin) == dict(latin.headers.items())


@pytest.mark.parametrize(
    "content",
    [
        b'{"a": "\xc3\xa9"}',
        b'\xef\xbb\xbf{"a": "\xc3\xa9"}',
        '{"a": "é"}'.encode("utf-16"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16"],
)
def test_json_body_reads_what_json_loads_reads(content: bytes) -> None:
    assert json_body(content) == json.loads(content) == {"a": "é"}
