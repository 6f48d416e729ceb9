"""The `shopify` connector's session: the cost limiter that paces GraphQL queries by
Shopify's calculated query cost, and the session that runs named operations, classifies their
errors and reads locations and inventory levels."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowkit.connectors.base import ConnectorError, ErrorKind, Runtime
from flowkit.connectors.http_options import client_options
from flowkit.connectors.http_pages import paginate_cursor
from flowkit.connectors.shopify.models import InventoryLevel, ShopifySettings
from flowkit.connectors.shopify.wire import LIST_LOCATIONS, VARIANTS_BY_SKU, as_gid, search_value
from flowkit.connectors.stock import chunks

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient

SKUS_PER_QUERY = 50
AUTH_HINT = (
    "Check the connection's `access_token` (an Admin API token, shpat_..., of an app installed "
    "on this shop with read_orders, read_inventory and write_inventory scopes)."
)


async def _sleep(seconds: float) -> None:
    import asyncio  # at the first wait, not with the models (`flowkit validate` imports them)

    await asyncio.sleep(seconds)


class ShopifyCostLimiter:
    """Paces GraphQL queries by calculated cost, from the bucket state Shopify reports.

    Satisfies the HTTP layer's `RateLimiter` protocol: `acquire(cost)` waits until the bucket,
    as last reported and refilled at `restoreRate` since, holds `cost` points, then reserves
    them; `observe(response)` reads `extensions.cost.throttleStatus` from the answer.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        self.maximum = 1000.0  # until the first answer says otherwise
        self.restore_rate = 50.0
        self.available: float | None = None  # unknown before the first answer
        self._clock = clock
        self._sleep = sleep or _sleep
        self._updated = clock()

    def level(self) -> float | None:
        if self.available is None:
            return None
        elapsed = max(0.0, self._clock() - self._updated)
        return min(self.maximum, self.available + elapsed * self.restore_rate)

    def wait_for(self, cost: float) -> float:
        """Seconds until the bucket holds `cost` points (0 when unknown or enough now)."""
        level = self.level()
        if level is None or level >= cost:
            return 0.0
        # A millisecond more than the arithmetic says: the bucket must hold `cost` when it checks.
        return (min(cost, self.maximum) - level) / self.restore_rate + 0.001

    async def acquire(self, cost: float = 1) -> None:
        wait = self.wait_for(cost)
        if wait > 0:
            await self._sleep(wait)
        level = self.level()
        if level is not None:
            self.available = level - cost
            self._updated = self._clock()

    def observe(self, response: httpx.Response) -> None:
        try:
            body = json.loads(response.content)
            status = body["extensions"]["cost"]["throttleStatus"]
            self.maximum = float(status["maximumAvailable"])
            self.restore_rate = float(status["restoreRate"])
            self.available = float(status["currentlyAvailable"])
        except (ValueError, KeyError, TypeError):
            return
        self._updated = self._clock()


# ------------------------------------------------------------------------------ session
@dataclass
class ShopifySession:
    client: HttpClient
    limiter: ShopifyCostLimiter
    settings: ShopifySettings
    costs: dict[str, float] = field(default_factory=dict)  # last requestedQueryCost per op
    _location: str | None = None

    async def graphql(
        self,
        operation: str,
        query: str,
        variables: dict[str, Any],
        estimate: float,
        *,
        write: bool = False,
    ) -> dict[str, Any]:
        """Run one named operation; returns `data` or raises a classified ConnectorError."""
        await self.limiter.acquire(self.costs.get(operation, estimate))
        payload = {"query": query, "variables": variables, "operationName": operation}
        try:
            response = await self.client.request("POST", "graphql.json", json=payload)
        except ConnectorError as exc:
            if exc.kind is ErrorKind.AUTH and exc.hint is None:
                exc.hint = AUTH_HINT
            if exc.status == 404 and exc.hint is None:
                exc.hint = "Check the connection's `shop_url` and `api_version`."
            raise
        self.limiter.observe(response)
        try:
            body = self.client.json(response)
        except ConnectorError as exc:
            exc.maybe_sent = write
            raise
        if not isinstance(body, dict):
            raise ConnectorError(
                f"Shopify answered {operation} with something other than a JSON object",
                maybe_sent=write,
            )
        cost = (body.get("extensions") or {}).get("cost") or {}
        if isinstance(cost.get("requestedQueryCost"), int | float):
            self.costs[operation] = float(cost["requestedQueryCost"])
        errors = body.get("errors")
        if errors:
            raise self._error(operation, errors, cost, write)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ConnectorError(f"Shopify answered {operation} without data", maybe_sent=write)
        return data

    def _error(
        self, operation: str, errors: Any, cost: dict[str, Any], write: bool
    ) -> ConnectorError:
        raw = errors if isinstance(errors, list) else [errors]
        items: list[dict[str, Any]] = [e if isinstance(e, dict) else {"message": e} for e in raw]
        codes = [str((e.get("extensions") or {}).get("code") or "") for e in items]
        messages = "; ".join(str(e.get("message") or e) for e in items)
        if "THROTTLED" in codes:
            status = cost.get("throttleStatus") or {}
            requested = float(cost.get("requestedQueryCost") or 0)
            available = float(status.get("currentlyAvailable") or 0)
            rate = float(status.get("restoreRate") or self.limiter.restore_rate) or 1.0
            wait = max(0.0, (requested - available) / rate)
            return ConnectorError(
                f"Shopify throttled {operation}: it costs {requested:g} points, "
                f"{available:g} are available, {rate:g} restore per second",
                kind=ErrorKind.RATE_LIMITED,
                retry_after=wait,
            )
        kinds = {
            "ACCESS_DENIED": ErrorKind.AUTH,
            "INTERNAL_SERVER_ERROR": ErrorKind.TRANSIENT,
            "MAX_COST_EXCEEDED": ErrorKind.PERMANENT,
        }
        kind = next((kinds[c] for c in codes if c in kinds), ErrorKind.VALIDATION)
        code = next((c for c in codes if c), "")
        suffix = f" ({code})" if code else ""
        return ConnectorError(
            f"Shopify GraphQL {operation} failed: {messages}{suffix}",
            kind=kind,
            maybe_sent=write and kind is ErrorKind.TRANSIENT,
        )

    async def location(self, requested: str | None) -> str:
        if requested:
            return as_gid("Location", requested)
        if self.settings.location_id:
            return self.settings.location_id
        if self._location is None:
            data = await self.graphql("ListLocations", LIST_LOCATIONS, {"first": 50}, 52)
            nodes = (data.get("locations") or {}).get("nodes") or []
            active = [n for n in nodes if n.get("isActive", True)]
            if not active:
                raise ConnectorError("the shop has no active location", kind=ErrorKind.VALIDATION)
            self._location = str(active[0]["id"])
        return self._location

    async def inventory(self, skus: list[str], location: str) -> dict[str, InventoryLevel]:
        found: dict[str, InventoryLevel] = {}
        wanted = set(skus)
        for group in chunks(sorted(wanted), SKUS_PER_QUERY):
            search = " OR ".join(f"sku:{search_value(s)}" for s in group)

            async def fetch(
                after: str | None, search: str = search
            ) -> tuple[list[Any], str | None]:
                variables = {"first": 100, "after": after, "query": search, "locationId": location}
                data = await self.graphql("VariantsBySku", VARIANTS_BY_SKU, variables, 402)
                conn = data.get("productVariants") or {}
                info = conn.get("pageInfo") or {}
                return conn.get("nodes") or [], info.get("endCursor") if info.get(
                    "hasNextPage"
                ) else None

            async for node in paginate_cursor(fetch):
                sku = str(node.get("sku") or "")
                if sku not in wanted or sku in found:
                    continue  # Shopify's search is broader than equality; keep exact SKUs only
                item = node.get("inventoryItem") or {}
                level = item.get("inventoryLevel")
                available = None
                if isinstance(level, dict):
                    available = next(
                        (int(q["quantity"]) for q in level.get("quantities") or []
                         if q.get("name") == "available"),
                        None,
                    )  # fmt: skip
                found[sku] = InventoryLevel(
                    sku=sku,
                    variant_id=str(node["id"]),
                    inventory_item_id=str(item.get("id") or ""),
                    available=available,
                )
        return found


async def _open(settings: ShopifySettings, runtime: Runtime) -> ShopifySession:
    from flowkit.connectors.auth import ApiKeyAuth
    from flowkit.connectors.http_client import HttpClient

    limiter = ShopifyCostLimiter()
    client = HttpClient(
        f"{settings.shop_url}/admin/api/{settings.api_version}/",
        auth=ApiKeyAuth("X-Shopify-Access-Token", settings.access_token),
        headers={"Accept": "application/json"},
        timeout=settings.timeout,
        runtime=runtime,
        name="shopify",
        **client_options(settings, runtime, "shopify"),
    )
    return ShopifySession(client=client, limiter=limiter, settings=settings)


async def _close(session: ShopifySession) -> None:
    await session.client.aclose()
