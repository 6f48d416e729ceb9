"""The `stripe` connector's session: the HTTP client for a connection (HTTP Basic with the
secret key, `Stripe-Version`, pacing) and the form-encoding request helpers, paging included."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flowkit.connectors.base import ErrorKind, Runtime, reveal
from flowkit.connectors.http_options import client_options
from flowkit.connectors.stripe.models import StripeSettings
from flowkit.connectors.stripe.wire import form_pairs, stripe_kind, stripe_message
from flowkit.errors import ConnectorError

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient


class StripeSession:
    """An open connection: the HTTP client and the form-encoding request helpers."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.client.get_json(path, params=form_pairs(params or {}))

    async def post(
        self, path: str, params: Mapping[str, Any], idempotency_key: str | None = None
    ) -> Any:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = urlencode(form_pairs(params))
        return await self.client.post_json(path, content=body, headers=headers)

    async def list_all(
        self, path: str, params: Mapping[str, Any], *, max_pages: int = 1000
    ) -> list[dict[str, Any]]:
        """Every object of a list endpoint, following `has_more` and `starting_after`."""
        objects: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(max_pages):
            page_params = dict(params)
            if after:
                page_params["starting_after"] = after
            page = await self.get(path, page_params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise ConnectorError(
                    f"unexpected answer from GET {path}: no `data` list", kind=ErrorKind.PERMANENT
                )
            objects.extend(data)
            if not page.get("has_more") or not data:
                return objects
            last = data[-1].get("id")
            if not last or last == after:
                raise ConnectorError(
                    f"pagination did not advance on GET {path}: starting_after {last!r} again",
                    kind=ErrorKind.PERMANENT,
                )
            after = last
        raise ConnectorError(
            f"pagination of GET {path} did not finish within {max_pages} pages",
            kind=ErrorKind.PERMANENT,
        )


def make_client(
    settings: StripeSettings,
    runtime: Runtime,
    transport: httpx.AsyncBaseTransport | None = None,
) -> HttpClient:
    """The HTTP client for a connection (tests pass a `transport`)."""
    from flowkit.connectors.auth import BasicAuth
    from flowkit.connectors.http_client import HttpClient, TokenBucket

    key = reveal(settings.api_key)
    headers = {"Accept": "application/json"}
    if settings.api_version:
        headers["Stripe-Version"] = settings.api_version
    limiter = None
    if settings.rate_limit:
        limiter = TokenBucket(settings.rate_limit, max(1, int(settings.rate_limit)))
    client = HttpClient(
        settings.base_url,
        auth=BasicAuth(key, ""),
        headers=headers,
        timeout=settings.timeout,
        max_connections=settings.max_connections,
        rate_limiter=limiter,
        error_message=stripe_message,
        classify=stripe_kind,
        runtime=runtime,
        name=runtime.connection or "stripe",
        transport=transport,
        **client_options(settings, runtime, "stripe"),
    )
    client.add_secret(key)
    return client


async def _open(settings: StripeSettings, runtime: Runtime) -> StripeSession:
    return StripeSession(make_client(settings, runtime))


async def _close(session: StripeSession) -> None:
    await session.client.aclose()
