"""What the `woocommerce` connector's requests and answers carry, without the HTTP layer:
page and batch limits, WordPress error bodies, `*_gmt` times, `X-WP-TotalPages`. httpx is
only named in annotations, so `flowkit validate` imports this module without it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowkit.connectors.base import ConnectorError, ErrorKind

if TYPE_CHECKING:
    import httpx

API_PATH = "/wp-json/wc/v3/"
BATCH_LIMIT = 100  # WooCommerce rejects larger batches (woocommerce_rest_batch_items_limit)
MAX_PER_PAGE = 100
MAX_REQUESTS = 10_000  # a list action gives up after this many pages (a broken server)
AUTH_HINT = (
    "Check the connection's `consumer_key`/`consumer_secret` (WooCommerce > Settings > Advanced "
    "> REST API, with Read/Write permission); if the keys are right, the host may strip the "
    "Authorization header: set `auth: query`."
)


def utc(value: Any) -> str | None:
    """WooCommerce's `*_gmt` times carry no zone: mark them as UTC."""
    if not value:
        return None
    text = str(value)
    return text if text.endswith("Z") or "+" in text[10:] else f"{text}Z"


def wp_error_message(response: httpx.Response) -> str:
    """`message (code)` from a WordPress REST error body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("code")
        return f"{body['message']} ({code})" if code else str(body["message"])
    from flowkit.connectors.http_reply import default_error_message

    return default_error_message(response)


def total_pages(response: httpx.Response) -> int:
    try:
        return int(response.headers.get("X-WP-TotalPages", "1"))
    except ValueError:
        return 1


def with_hint(exc: ConnectorError) -> ConnectorError:
    if exc.kind is ErrorKind.AUTH and exc.hint is None:
        exc.hint = AUTH_HINT
    return exc
