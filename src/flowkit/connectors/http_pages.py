"""Pagination helpers for HTTP connectors, each guarded against an API that never stops:
cursor pages, numbered pages, and the `rel="next"` target of RFC 8288 `Link` headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowkit.errors import ConnectorError, ErrorKind

if TYPE_CHECKING:  # connectors import the paginators with their models: keep httpx out
    import httpx

__all__ = ["next_link", "paginate_cursor", "paginate_pages"]


async def paginate_cursor(
    fetch: Callable[[str | None], Awaitable[tuple[list[Any], str | None]]],
    *,
    max_pages: int = 1000,
) -> AsyncIterator[Any]:
    """Items of every page: `fetch(cursor)` returns (items, next cursor or None); the first
    call gets None. A cursor seen before raises instead of looping forever."""
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(max_pages):
        items, following = await fetch(cursor)
        for item in items:
            yield item
        if following is None or following == "":
            return
        if following in seen or following == cursor:
            raise ConnectorError(
                f"pagination did not advance: the API returned cursor {following!r} again",
                kind=ErrorKind.PERMANENT,
            )
        seen.add(following)
        cursor = following
    raise ConnectorError(
        f"pagination did not finish within {max_pages} pages", kind=ErrorKind.PERMANENT
    )


async def paginate_pages(
    fetch: Callable[[int], Awaitable[tuple[list[Any], bool]]],
    *,
    start: int = 1,
    max_pages: int = 1000,
) -> AsyncIterator[Any]:
    """Items of numbered pages: `fetch(page)` returns (items, has_more). A page that is empty
    while more are announced, or repeats the previous page, raises instead of looping."""
    previous: list[Any] | None = None
    page = start
    for _ in range(max_pages):
        items, has_more = await fetch(page)
        if has_more and (not items or items == previous):
            raise ConnectorError(
                f"pagination did not advance: page {page} "
                + ("is empty" if not items else "repeats the previous page")
                + " but more pages are announced",
                kind=ErrorKind.PERMANENT,
            )
        for item in items:
            yield item
        if not has_more:
            return
        previous = items
        page += 1
    raise ConnectorError(
        f"pagination did not finish within {max_pages} pages", kind=ErrorKind.PERMANENT
    )


_LINK_VALUE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_LINK_PARAM = re.compile(r';\s*([^\s=;,]+)\s*=\s*(?:"([^"]*)"|([^\s;,]+))')


def next_link(response: httpx.Response) -> str | None:
    """The absolute URL of the `rel="next"` target of the `Link` header(s) (RFC 8288)."""
    for header in response.headers.get_list("link"):
        for match in _LINK_VALUE.finditer(header):
            target, params = match.group(1), match.group(2)
            for param in _LINK_PARAM.finditer(params):
                if param.group(1).lower() != "rel":
                    continue
                rels = (param.group(2) if param.group(2) is not None else param.group(3)) or ""
                if "next" in rels.lower().split():
                    try:
                        base = response.request.url
                    except RuntimeError:  # a response built without its request
                        return target
                    return str(base.join(target))
    return None
