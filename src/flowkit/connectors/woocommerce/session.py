"""The `woocommerce` connector's session: the shared `HttpClient` under `/wp-json/wc/v3/`,
the REST API keys (HTTP Basic or query parameters), numbered pages and SKU look-ups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowkit.connectors.base import ConnectorError, ErrorKind, Runtime, reveal
from flowkit.connectors.http_options import client_options
from flowkit.connectors.stock import chunks
from flowkit.connectors.woocommerce.models import WooCommerceSettings
from flowkit.connectors.woocommerce.wire import (
    API_PATH,
    MAX_PER_PAGE,
    MAX_REQUESTS,
    total_pages,
    with_hint,
    wp_error_message,
)

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient


@dataclass
class WooCommerceSession:
    client: HttpClient

    async def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self.client.request("GET", path, params=params)
        except ConnectorError as exc:
            raise with_hint(exc) from None

    async def send(self, method: str, path: str, body: Any) -> Any:
        try:
            response = await self.client.request(method, path, json=body)
        except ConnectorError as exc:
            raise with_hint(exc) from None
        return self.client.json(response)

    def page_json(self, response: httpx.Response) -> list[dict[str, Any]]:
        body = self.client.json(response)
        if not isinstance(body, list):
            raise ConnectorError(
                f"unexpected answer from GET {response.request.url.path}: not a JSON list",
                kind=ErrorKind.PERMANENT,
            )
        return [item for item in body if isinstance(item, dict)]

    async def all_pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a numbered-page collection, guided by `X-WP-TotalPages`."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            response = await self.get(path, {**params, "page": page})
            batch = self.page_json(response)
            items.extend(batch)
            pages = total_pages(response)
            if page >= pages or not batch:
                return items
            if page >= MAX_REQUESTS:
                raise ConnectorError(f"GET {path} did not finish within {MAX_REQUESTS} pages")
            page += 1

    async def stock_levels(self, skus: list[str]) -> dict[str, dict[str, Any]]:
        """Products by SKU (chunks of 100 SKUs per request)."""
        found: dict[str, dict[str, Any]] = {}
        wanted = set(skus)
        for group in chunks(sorted(wanted), MAX_PER_PAGE):
            params = {"sku": ",".join(group), "per_page": MAX_PER_PAGE}
            for product in await self.all_pages("products", params):
                sku = str(product.get("sku") or "")
                if sku in wanted and sku not in found:
                    found[sku] = product
        return found


async def _open(settings: WooCommerceSettings, runtime: Runtime) -> WooCommerceSession:
    from flowkit.connectors.auth import BasicAuth, FlowkitAuth, QueryParamsAuth
    from flowkit.connectors.http_client import HttpClient, TokenBucket

    key, secret = reveal(settings.consumer_key), reveal(settings.consumer_secret)
    auth: FlowkitAuth = (
        BasicAuth(key, secret)
        if settings.auth == "basic"
        else QueryParamsAuth({"consumer_key": key, "consumer_secret": secret})
    )
    limiter = None
    if settings.rate_limit is not None:
        limiter = TokenBucket(settings.rate_limit, max(1, int(settings.rate_limit)))
    client = HttpClient(
        settings.base_url.rstrip("/") + API_PATH,
        auth=auth,
        headers={"Accept": "application/json"},
        timeout=settings.timeout,
        rate_limiter=limiter,
        error_message=wp_error_message,
        runtime=runtime,
        name="woocommerce",
        **client_options(settings, runtime, "woocommerce"),
    )
    client.add_secret(key)
    return WooCommerceSession(client=client)


async def _close(session: WooCommerceSession) -> None:
    await session.client.aclose()
