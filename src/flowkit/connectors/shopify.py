"""The `shopify` connector: orders, inventory levels and order tags over the Admin GraphQL API.

Every call is a named GraphQL operation POSTed to `{shop_url}/admin/api/{api_version}/graphql.json`
with the `X-Shopify-Access-Token` header, through the shared `HttpClient`.

Rate limits are Shopify's calculated query cost: each answer carries `extensions.cost` with the
bucket's `throttleStatus` (`maximumAvailable`, `currentlyAvailable`, `restoreRate`).
`ShopifyCostLimiter` learns the bucket from every answer and, before the next query, waits
until the bucket holds that query's estimated cost (connection cost = 2 + first × node cost, as
the reference computes it; the last `requestedQueryCost` of the same operation when known).
A query Shopify refused as `THROTTLED` (HTTP 200 with `errors[].extensions.code`) becomes
`ConnectorError(RATE_LIMITED)` with `retry_after` = (requested − available) / restoreRate; it
was not executed, so `maybe_sent` is False. HTTP 429/5xx are classified by the HTTP layer.

`list_orders` is a trigger: orders with a fulfillment status (default `shipped`) updated after
the cursor minus an overlap, `sortKey: UPDATED_AT`, paged with `after: endCursor` (keyset
cursors: an order updated while paging moves to the end, nothing is skipped).

`set_inventory` reads `available` levels by SKU at a location, sends only the SKUs that differ
in `inventorySetQuantities` calls of at most 250 quantities (Shopify's input array limit), with
`compareQuantity` set to the level just read (compare-and-set: a level changed meanwhile is
reported as `COMPARE_QUANTITY_STALE` instead of being overwritten). The mutation is atomic: when
some quantities have user errors, the others are sent again once without them.

References followed:
  https://shopify.dev/docs/api/admin-graphql/2025-01/mutations/inventorySetQuantities
  https://shopify.dev/docs/api/admin-graphql/2025-01/queries/orders
  https://shopify.dev/docs/api/admin-graphql/2025-01/queries/productVariants
  https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits
  https://shopify.dev/docs/api/usage/limits  (input arrays at most 250 items)
  https://community.shopify.com/t/throttled/254776  (the THROTTLED error body)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, SecretStr, field_validator

from flowkit.connectors.base import (
    Action,
    CallContext,
    Change,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
    Input,
    Output,
    Runtime,
)
from flowkit.connectors.http_options import TransportSettings, client_options
from flowkit.connectors.http_pages import paginate_cursor
from flowkit.connectors.stock import chunks, unique_skus

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient

__all__ = ["ShopifyCostLimiter", "ShopifySession", "ShopifySettings", "connector"]

DOCS_URL = "https://shopify.dev/docs/api/admin-graphql"
MAX_INPUT = 250  # Shopify: input arrays accept at most 250 items
MAX_FIRST = 250
SKUS_PER_QUERY = 50
MUTATION_COST = 10
AUTH_HINT = (
    "Check the connection's `access_token` (an Admin API token, shpat_..., of an app installed "
    "on this shop with read_orders, read_inventory and write_inventory scopes)."
)

ORDER_FIELDS = """
      id name email createdAt updatedAt processedAt closedAt cancelledAt
      displayFulfillmentStatus displayFinancialStatus tags
      customer { id firstName lastName email }
      totalPriceSet { shopMoney { amount currencyCode } }
      fulfillments(first: 10) { createdAt status }
      lineItems(first: $lineItems) { nodes { id sku name quantity variant { id } product { id } } }
"""
LIST_ORDERS = (
    "query ListOrders($first: Int!, $after: String, $query: String, $lineItems: Int!) {\n"
    "  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {\n"
    "    nodes {" + ORDER_FIELDS + "    }\n"
    "    pageInfo { hasNextPage endCursor }\n  }\n}"
)
GET_ORDER = (
    "query GetOrder($id: ID!, $lineItems: Int!) {\n  order(id: $id) {" + ORDER_FIELDS + "  }\n}"
)
VARIANTS_BY_SKU = """query VariantsBySku(
  $first: Int!, $after: String, $query: String, $locationId: ID!
) {
  productVariants(first: $first, after: $after, query: $query) {
    nodes {
      id sku
      product { id title }
      inventoryItem {
        id
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
SET_INVENTORY = """mutation SetInventory($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange } }
    userErrors { field message code }
  }
}"""
LIST_LOCATIONS = """query ListLocations($first: Int!) {
  locations(first: $first) { nodes { id name isActive } pageInfo { hasNextPage endCursor } }
}"""
ADD_TAGS = """mutation AddTags($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } }
}"""


class ShopifySettings(TransportSettings):
    """Connection settings: the shop, an Admin API access token, the API version."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    shop_url: str = Field(
        validation_alias=AliasChoices("shop_url", "base_url"),
        description="The shop, e.g. https://my-shop.myshopify.com (alias: base_url).",
    )
    access_token: SecretStr = Field(description="Admin API access token (shpat_...).")
    api_version: str = Field(
        "2025-01", pattern=r"^(\d{4}-\d{2}|unstable)$", description="Admin API version."
    )
    location_id: str | None = Field(
        None, description="Default location for inventory (gid://shopify/Location/...)."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for each answer.")

    @field_validator("shop_url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip().rstrip("/")
        if not re.match(r"^https?://", text):
            text = "https://" + text
        if not re.match(r"^https?://[^\s/]+$", text):
            raise ValueError("must be the shop's address, e.g. https://my-shop.myshopify.com")
        return text

    @field_validator("location_id")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        return None if value is None else as_gid("Location", value)


# ------------------------------------------------------------------------------- models
class ShopifyLineItem(Output):
    sku: str = ""
    name: str = ""
    quantity: int = 0
    product_id: str | None = None
    variant_id: str | None = None


class ShopifyOrder(Output):
    """An order, with the fields recipes need (Shopify's own fields are kept too)."""

    id: str = Field(description="The order's GID (gid://shopify/Order/...).")
    legacy_id: int = Field(description="The numeric ID shown in the admin URL.")
    number: str = Field(description="The order name shown to the customer, e.g. #1001.")
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    customer_name: str = ""
    status: str = Field(description="displayFulfillmentStatus, e.g. FULFILLED.")
    financial_status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    fulfilled_at: str | None = Field(None, description="When the last fulfillment was created.")
    cancelled_at: str | None = None
    tags: list[str] = Field(default_factory=list)
    total: str = "0"
    currency: str = ""
    line_items: list[ShopifyLineItem] = Field(default_factory=list)
    product_ids: list[str] = Field(default_factory=list)
    skus: list[str] = Field(default_factory=list)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> ShopifyOrder:
        customer = raw.get("customer") or {}
        first, last = str(customer.get("firstName") or ""), str(customer.get("lastName") or "")
        lines = [
            ShopifyLineItem(
                sku=str(li.get("sku") or ""),
                name=str(li.get("name") or ""),
                quantity=int(li.get("quantity") or 0),
                product_id=(li.get("product") or {}).get("id"),
                variant_id=(li.get("variant") or {}).get("id"),
            )
            for li in ((raw.get("lineItems") or {}).get("nodes") or [])
        ]
        money = (raw.get("totalPriceSet") or {}).get("shopMoney") or {}
        fulfilled = [
            f.get("createdAt") for f in raw.get("fulfillments") or [] if f.get("createdAt")
        ]
        kept = {k: v for k, v in raw.items() if k not in ("lineItems", "customer")}
        return cls.model_validate(
            {
                **kept,
                "legacy_id": legacy_id(str(raw["id"])),
                "number": str(raw.get("name") or ""),
                "email": str(raw.get("email") or customer.get("email") or ""),
                "first_name": first,
                "last_name": last,
                "customer_name": " ".join(n for n in (first, last) if n),
                "status": str(raw.get("displayFulfillmentStatus") or ""),
                "financial_status": raw.get("displayFinancialStatus"),
                "created_at": raw.get("createdAt"),
                "updated_at": raw.get("updatedAt"),
                "fulfilled_at": max(fulfilled) if fulfilled else None,
                "cancelled_at": raw.get("cancelledAt"),
                "total": str(money.get("amount") or "0"),
                "currency": str(money.get("currencyCode") or ""),
                "line_items": lines,
                "product_ids": sorted({li.product_id for li in lines if li.product_id}),
                "skus": sorted({li.sku for li in lines if li.sku}),
            }
        )


class ListOrdersInput(Input):
    fulfillment_status: Literal["shipped", "partial", "unshipped", "unfulfilled", "any"] = Field(
        "shipped", description="Shopify's `fulfillment_status` search filter."
    )
    cursor: str | None = Field(None, description="ISO 8601 time: orders updated after it.")
    per_page: int = Field(25, ge=1, le=MAX_FIRST, description="Orders per query (cost-capped).")
    line_items: int = Field(20, ge=1, le=MAX_FIRST, description="Line items read per order.")
    overlap_seconds: int = Field(120, ge=0, description="Re-read this much before the cursor.")


class ListOrdersOutput(Output):
    items: list[ShopifyOrder]
    cursor: str | None


class GetOrderInput(Input):
    id: str = Field(min_length=1, description="Order GID or numeric ID.")
    line_items: int = Field(50, ge=1, le=MAX_FIRST)


class InventoryLevel(Output):
    sku: str
    variant_id: str
    inventory_item_id: str
    available: int | None = Field(description="None when the item is not stocked there.")


class GetInventoryInput(Input):
    skus: list[str] = Field(min_length=1)
    location_id: str | None = Field(None, description="Default: the connection's location.")


class GetInventoryOutput(Output):
    location_id: str
    items: list[InventoryLevel]
    missing: list[str] = Field(default_factory=list)


class InventoryTarget(Input):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=-1_000_000_000, le=1_000_000_000)


class SetInventoryInput(Input):
    items: list[InventoryTarget]
    location_id: str | None = Field(None, description="Default: the connection's location.")
    reason: str = Field("correction", description="Shopify's adjustment reason.")
    compare: bool = Field(
        True, description="Compare-and-set against the level just read (compareQuantity)."
    )

    @field_validator("items")
    @classmethod
    def _unique(cls, items: list[InventoryTarget]) -> list[InventoryTarget]:
        return unique_skus(items)


class InventoryUpdate(Output):
    sku: str
    inventory_item_id: str
    old: int | None
    new: int


class ItemError(Output):
    sku: str
    code: str
    message: str


class SetInventoryOutput(Output):
    location_id: str
    updated: list[InventoryUpdate] = Field(default_factory=list)
    unchanged: int = 0
    errors: list[ItemError] = Field(default_factory=list)


class AddTagsInput(Input):
    id: str = Field(min_length=1, description="Order GID or numeric ID.")
    tags: list[str] = Field(min_length=1)


class AddTagsOutput(Output):
    id: str


# ------------------------------------------------------------------------------ helpers
def as_gid(kind: str, value: str) -> str:
    text = str(value).strip()
    if text.isdigit():
        return f"gid://shopify/{kind}/{text}"
    if not text.startswith(f"gid://shopify/{kind}/"):
        raise ValueError(f"{text!r} is not a {kind} ID (a number or gid://shopify/{kind}/...)")
    return text


def legacy_id(gid: str) -> int:
    tail = gid.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def parse_time(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConnectorError(
            f"{what} {value!r} is not an ISO 8601 time (e.g. 2025-01-31T12:00:00Z)",
            kind=ErrorKind.VALIDATION,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def search_value(value: str) -> str:
    """A value for Shopify search syntax: quoted when it holds anything but safe characters."""
    if re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


# ------------------------------------------------------------------------------ actions
class ListOrders(Action[ListOrdersInput, ListOrdersOutput]):
    name = "list_orders"
    description = "Orders with a fulfillment status updated since the cursor (a trigger)."
    effect = Effect.READ
    Input = ListOrdersInput
    Output = ListOrdersOutput

    async def run(
        self, session: ShopifySession, input: ListOrdersInput, call: CallContext
    ) -> ListOrdersOutput:
        node_cost = 3 + input.line_items
        first = min(input.per_page, int((session.limiter.maximum - 2) // node_cost))
        if first < 1:
            raise ConnectorError(
                f"line_items={input.line_items} makes one order cost more than the bucket holds",
                kind=ErrorKind.VALIDATION,
            )
        terms = [f"fulfillment_status:{input.fulfillment_status}"]
        if input.cursor:
            bound = parse_time(input.cursor, "cursor") - timedelta(seconds=input.overlap_seconds)
            terms.append(f"updated_at:>'{bound.strftime('%Y-%m-%dT%H:%M:%SZ')}'")
        variables = {"first": first, "query": " ".join(terms), "lineItems": input.line_items}

        async def fetch(after: str | None) -> tuple[list[Any], str | None]:
            data = await session.graphql(
                "ListOrders", LIST_ORDERS, {**variables, "after": after}, 2 + first * node_cost
            )
            conn = data.get("orders") or {}
            info = conn.get("pageInfo") or {}
            return conn.get("nodes") or [], info.get("endCursor") if info.get(
                "hasNextPage"
            ) else None

        seen: dict[str, ShopifyOrder] = {}
        async for node in paginate_cursor(fetch):
            order = ShopifyOrder.from_api(node)
            seen[order.id] = order  # an order updated while paging comes again: keep the newest
        orders = sorted(seen.values(), key=lambda o: (o.updated_at or "", o.legacy_id))
        return ListOrdersOutput(items=orders, cursor=newest(orders, input.cursor))


def newest(orders: list[ShopifyOrder], previous: str | None) -> str | None:
    stamps = [(parse_time(o.updated_at, "updatedAt"), o.updated_at) for o in orders if o.updated_at]
    if not stamps:
        return previous
    moment, text = max(stamps)
    if previous and parse_time(previous, "cursor") >= moment:
        return previous
    return text


class GetOrder(Action[GetOrderInput, ShopifyOrder]):
    name = "get_order"
    description = "One order by GID or numeric ID."
    effect = Effect.READ
    Input = GetOrderInput
    Output = ShopifyOrder

    async def run(
        self, session: ShopifySession, input: GetOrderInput, call: CallContext
    ) -> ShopifyOrder:
        order_id = checked_gid("Order", input.id)
        variables = {"id": order_id, "lineItems": input.line_items}
        data = await session.graphql("GetOrder", GET_ORDER, variables, 4 + input.line_items)
        if not isinstance(data.get("order"), dict):
            raise ConnectorError(f"Shopify has no order {order_id}", kind=ErrorKind.NOT_FOUND)
        return ShopifyOrder.from_api(data["order"])


def checked_gid(kind: str, value: str) -> str:
    try:
        return as_gid(kind, value)
    except ValueError as exc:
        raise ConnectorError(str(exc), kind=ErrorKind.VALIDATION) from None


class AddOrderTags(Action[AddTagsInput, AddTagsOutput]):
    name = "add_order_tags"
    description = "Add tags to an order (tags already there stay; repeating is harmless)."
    effect = Effect.WRITE
    idempotency = Idempotency.NATURAL
    Input = AddTagsInput
    Output = AddTagsOutput

    async def run(
        self, session: ShopifySession, input: AddTagsInput, call: CallContext
    ) -> AddTagsOutput:
        order_id = checked_gid("Order", input.id)
        variables = {"id": order_id, "tags": list(input.tags)}
        data = await session.graphql("AddTags", ADD_TAGS, variables, MUTATION_COST, write=True)
        result = data.get("tagsAdd") or {}
        problems = result.get("userErrors") or []
        if problems:
            text = "; ".join(str(p.get("message")) for p in problems)
            kind = ErrorKind.NOT_FOUND if "not exist" in text else ErrorKind.VALIDATION
            raise ConnectorError(f"Shopify refused tagsAdd on {order_id}: {text}", kind=kind)
        return AddTagsOutput(id=str((result.get("node") or {}).get("id") or order_id))


class GetInventory(Action[GetInventoryInput, GetInventoryOutput]):
    name = "get_inventory"
    description = "Available quantities of SKUs at a location."
    effect = Effect.READ
    Input = GetInventoryInput
    Output = GetInventoryOutput

    async def run(
        self, session: ShopifySession, input: GetInventoryInput, call: CallContext
    ) -> GetInventoryOutput:
        location = await session.location(input.location_id)
        found = await session.inventory(input.skus, location)
        return GetInventoryOutput(
            location_id=location,
            items=[found[s] for s in input.skus if s in found],
            missing=[s for s in input.skus if s not in found],
        )


class SetInventory(Action[SetInventoryInput, SetInventoryOutput]):
    name = "set_inventory"
    description = "Set available quantities by SKU at a location; writes only the SKUs that differ."
    effect = Effect.WRITE
    idempotency = Idempotency.NATURAL
    Input = SetInventoryInput
    Output = SetInventoryOutput

    async def diff(
        self, session: ShopifySession, input: SetInventoryInput
    ) -> tuple[str, list[InventoryUpdate], int, list[ItemError]]:
        location = await session.location(input.location_id)
        found = await session.inventory([i.sku for i in input.items], location)
        changes: list[InventoryUpdate] = []
        errors: list[ItemError] = []
        unchanged = 0
        for item in input.items:
            level = found.get(item.sku)
            if level is None:
                errors.append(
                    ItemError(sku=item.sku, code="SKU_NOT_FOUND", message="no variant has this SKU")
                )
            elif level.available is None:
                errors.append(
                    ItemError(
                        sku=item.sku,
                        code="ITEM_NOT_STOCKED_AT_LOCATION",
                        message=f"not stocked at {location}",
                    )
                )
            elif level.available == item.quantity:
                unchanged += 1
            else:
                changes.append(
                    InventoryUpdate(
                        sku=item.sku,
                        inventory_item_id=level.inventory_item_id,
                        old=level.available,
                        new=item.quantity,
                    )
                )
        return location, changes, unchanged, errors

    async def plan(
        self, session: ShopifySession, input: SetInventoryInput, call: CallContext
    ) -> list[Change]:
        _, changes, _, _ = await self.diff(session, input)
        return [Change(subject=c.sku, field="stock", old=c.old, new=c.new) for c in changes]

    async def run(
        self, session: ShopifySession, input: SetInventoryInput, call: CallContext
    ) -> SetInventoryOutput:
        location, changes, unchanged, errors = await self.diff(session, input)
        updated: list[InventoryUpdate] = []
        for group in chunks(changes, MAX_INPUT):
            pending = group
            for _attempt in range(2):  # the mutation is atomic: resend once without bad items
                rejected = await self._send(session, input, location, pending, errors)
                if not rejected:
                    updated.extend(pending)
                    break
                pending = [c for i, c in enumerate(pending) if i not in rejected]
                if not pending:
                    break
        return SetInventoryOutput(
            location_id=location, updated=updated, unchanged=unchanged, errors=errors
        )

    async def _send(
        self,
        session: ShopifySession,
        input: SetInventoryInput,
        location: str,
        changes: list[InventoryUpdate],
        errors: list[ItemError],
    ) -> set[int]:
        """Send one mutation; returns the indices of rejected quantities (empty: applied)."""
        quantities = []
        for change in changes:
            entry: dict[str, Any] = {
                "inventoryItemId": change.inventory_item_id,
                "locationId": location,
                "quantity": change.new,
            }
            if input.compare:
                entry["compareQuantity"] = change.old
            quantities.append(entry)
        variables = {
            "input": {
                "name": "available",
                "reason": input.reason,
                "ignoreCompareQuantity": not input.compare,
                "quantities": quantities,
            }
        }
        data = await session.graphql(
            "SetInventory", SET_INVENTORY, variables, MUTATION_COST, write=True
        )
        result = data.get("inventorySetQuantities") or {}
        problems = result.get("userErrors") or []
        rejected: set[int] = set()
        general = []
        for problem in problems:
            path = [str(p) for p in problem.get("field") or []]
            index = (
                int(path[2])
                if len(path) > 2 and path[1] == "quantities" and path[2].isdigit()
                else None
            )
            if index is None or index >= len(changes):
                general.append(problem)
                continue
            rejected.add(index)
            errors.append(
                ItemError(
                    sku=changes[index].sku,
                    code=str(problem.get("code") or "USER_ERROR"),
                    message=str(problem.get("message") or ""),
                )
            )
        if general:
            text = "; ".join(f"{p.get('message')} ({p.get('code')})" for p in general)
            raise ConnectorError(
                f"Shopify refused inventorySetQuantities: {text}", kind=ErrorKind.VALIDATION
            )
        return rejected


connector = Connector(
    "shopify",
    description="Shopify shops over the Admin GraphQL API: orders, inventory, order tags.",
    settings=ShopifySettings,
    actions=[
        ListOrders(),
        GetOrder(),
        AddOrderTags(),
        GetInventory(),
        SetInventory(),
    ],
    open=_open,
    close=_close,
    docs_url=DOCS_URL,
)
