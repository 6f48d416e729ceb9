"""A local, stateful stand-in for the Shopify Admin GraphQL API (`/admin/api/<v>/graphql.json`).

This is a fake, not a GraphQL engine: it recognises the operations flowkit's connector sends, by
operation name (`ListOrders`, `GetOrder`, `VariantsBySku`, `SetInventory`, `ListLocations`,
`AddTags`), reads their variables, and answers with the response shapes of the reference:

* auth by `X-Shopify-Access-Token`; a wrong or missing token is a 401 with
  `{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}`;
* connections with `nodes` (and `edges { cursor node }` when the query asks for them) and
  `pageInfo { hasNextPage endCursor }`; `first` is 1..250;
* search syntax in `query:` arguments: `fulfillment_status:shipped updated_at:>'2025-01-01'`
  for orders, `sku:A OR sku:B` for product variants;
* `inventorySetQuantities` (2025-01 input: `name`, `reason`, `ignoreCompareQuantity`,
  `quantities[{inventoryItemId, locationId, quantity, compareQuantity}]`), atomic, with
  `userErrors { field message code }` (`COMPARE_QUANTITY_STALE`, `INVALID_INVENTORY_ITEM`, ...);
  input arrays over 250 items fail with `MAX_INPUT_SIZE_EXCEEDED`;
* calculated query cost: every answer carries `extensions.cost` {requestedQueryCost,
  actualQueryCost, throttleStatus {maximumAvailable, currentlyAvailable, restoreRate}} from a
  leaky bucket (1000 points, 50/s restore by default; `bucket_size`, `restore_rate`, an injectable
  `clock`); over budget the answer is 200 with `errors: [{message: "Throttled", extensions:
  {code: "THROTTLED"}}]`; a query costing more than the bucket is `MAX_COST_EXCEEDED`.
  Costs follow the reference's rules (object 1, connection 2 + first × node cost, mutation 10).

An unknown operation is a 400 naming the ones this sandbox implements. `faults` (shared with
the WooCommerce sandbox) injects 429s, 503s, malformed bodies, latency and dropped connections.

References followed:
  https://shopify.dev/docs/api/admin-graphql/2025-01/mutations/inventorySetQuantities
  https://shopify.dev/docs/api/admin-graphql/2025-01/enums/InventorySetQuantitiesUserErrorCode
  https://shopify.dev/docs/api/admin-graphql/2025-01/queries/orders
  https://shopify.dev/docs/api/admin-graphql/2025-01/enums/OrderDisplayFulfillmentStatus
  https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits  (cost, throttleStatus)
  https://shopify.dev/docs/api/usage/limits  (input arrays at most 250, pagination)
  https://community.shopify.com/t/throttled/254776  (the THROTTLED error body)
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from flowkit.sandbox.faults import Faults

__all__ = ["ShopifyCall", "ShopifyServer"]

MAX_FIRST = 250
MAX_INPUT = 250
MUTATION_COST = 10
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
FULFILLMENT_FILTERS = {
    "shipped": {"FULFILLED"},
    "fulfilled": {"FULFILLED"},
    "partial": {"PARTIALLY_FULFILLED"},
    "unshipped": {"UNFULFILLED"},
    "unfulfilled": {"UNFULFILLED", "PARTIALLY_FULFILLED"},
    "on_hold": {"ON_HOLD"},
    "scheduled": {"SCHEDULED"},
    "any": None,
}
OPERATION = re.compile(r"^\s*(query|mutation)\s+([_A-Za-z]\w*)", re.MULTILINE)
TERM = re.compile(r"""(\w+):(>=|<=|>|<)?('[^']*'|"[^"]*"|\S+)""")
BASE_TIME = datetime(2025, 1, 1, 9, 0, 0, tzinfo=UTC)
TIME_FIELDS = {"updated_at": "updatedAt", "created_at": "createdAt", "processed_at": "processedAt"}


@dataclass
class ShopifyCall:
    """One GraphQL request the server saw."""

    operation: str | None
    variables: dict[str, Any]
    status: int = 0
    throttled: bool = False


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(raw: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class GraphQLError(Exception):
    """A top-level GraphQL error (answered 200 with `errors`, no `data`)."""

    def __init__(self, message: str, code: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


class ShopifyServer:
    """The fake shop: `app` serves it; `orders`, `variants`, `levels` hold its state."""

    def __init__(
        self,
        *,
        access_token: str = "shpat_sandbox",
        bucket_size: float = 1000.0,
        restore_rate: float = 50.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        currency: str = "EUR",
    ) -> None:
        self.access_token = access_token
        self.bucket_size = bucket_size
        self.restore_rate = restore_rate
        self.clock = clock
        self.now = now or (lambda: datetime.now(UTC))
        self.currency = currency
        self.faults = Faults()
        self.calls: list[ShopifyCall] = []
        # Called after each answer: lets a test change the shop between two requests.
        self.after_request: Callable[[ShopifyCall], None] | None = None
        self.locations: dict[str, dict[str, Any]] = {}
        self.variants: dict[str, dict[str, Any]] = {}
        self.levels: dict[tuple[str, str], dict[str, int]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self._available = bucket_size
        self._refilled = clock()
        self._ids = {"Location": 0, "Product": 7000, "Order": 5000, "LineItem": 0, "Group": 0}
        self.add_location("Main warehouse")
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_route("*", "/admin/api/{version}/graphql.json", self._graphql)

    # ------------------------------------------------------------------ inspection helpers

    def operations(self) -> list[str | None]:
        return [call.operation for call in self.calls]

    def mutation_calls(self, name: str = "SetInventory") -> list[ShopifyCall]:
        return [call for call in self.calls if call.operation == name and not call.throttled]

    def available(self, sku: str, location_id: str | None = None) -> int | None:
        variant = next((v for v in self.variants.values() if v["sku"] == sku), None)
        if variant is None:
            return None
        level = self.levels.get(
            (variant["inventoryItem"]["id"], location_id or self.default_location)
        )
        return None if level is None else level["available"]

    def set_bucket(self, currently_available: float) -> None:
        """Force the bucket's level (e.g. 0 to make the next query THROTTLED)."""
        self._available = currently_available
        self._refilled = self.clock()

    @property
    def default_location(self) -> str:
        return next(iter(self.locations))

    # ------------------------------------------------------------------ state builders

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def add_location(self, name: str) -> dict[str, Any]:
        location: dict[str, Any] = {
            "id": gid("Location", self._next("Location")),
            "name": name,
            "isActive": True,
        }
        self.locations[location["id"]] = location
        return location

    def add_variant(
        self, sku: str, available: int = 0, *, location_id: str | None = None, price: str = "10.00"
    ) -> dict[str, Any]:
        number = self._next("Product")
        variant: dict[str, Any] = {
            "id": gid("ProductVariant", number),
            "sku": sku,
            "title": "Default Title",
            "price": price,
            "product": {"id": gid("Product", number), "title": f"Product {sku}"},
            "inventoryItem": {"id": gid("InventoryItem", number)},
        }
        self.variants[variant["id"]] = variant
        where = location_id or self.default_location
        self.levels[(variant["inventoryItem"]["id"], where)] = {
            "available": available,
            "on_hand": available,
        }
        return variant

    def add_order(
        self,
        *,
        email: str,
        first_name: str = "Sam",
        last_name: str = "Buyer",
        items: list[tuple[str, int]] | None = None,
        created: datetime | None = None,
    ) -> dict[str, Any]:
        """Create an unfulfilled, paid order; `items` are (sku, quantity) of existing variants."""
        at = iso(created or self.now())
        number = self._next("Order")
        by_sku = {v["sku"]: v for v in self.variants.values()}
        line_items, total = [], 0.0
        for sku, quantity in items or []:
            variant = by_sku[sku]
            total += float(variant["price"]) * quantity
            line_items.append(
                {
                    "id": gid("LineItem", self._next("LineItem")),
                    "sku": sku,
                    "name": variant["product"]["title"],
                    "quantity": quantity,
                    "variant": {"id": variant["id"]},
                    "product": {"id": variant["product"]["id"]},
                }
            )
        order: dict[str, Any] = {
            "id": gid("Order", number),
            "name": f"#{number - 4000}",
            "email": email,
            "createdAt": at,
            "updatedAt": at,
            "processedAt": at,
            "closedAt": None,
            "cancelledAt": None,
            "displayFulfillmentStatus": "UNFULFILLED",
            "displayFinancialStatus": "PAID",
            "tags": [],
            "customer": {
                "id": gid("Customer", number),
                "firstName": first_name,
                "lastName": last_name,
                "email": email,
            },
            "totalPriceSet": {
                "shopMoney": {"amount": f"{total:.2f}", "currencyCode": self.currency}
            },
            "fulfillments": [],
            "lineItems": line_items,
        }
        self.orders[order["id"]] = order
        return order

    def fulfill_order(self, order_id: str, at: datetime | None = None) -> None:
        """Mark every item fulfilled, as a merchant shipping the order would."""
        order = self.orders[order_id]
        stamp = iso(at or self.now())
        order["displayFulfillmentStatus"] = "FULFILLED"
        order["fulfillments"].append({"createdAt": stamp, "status": "SUCCESS"})
        order["updatedAt"] = stamp

    def seed(self, n: int, rng_seed: int = 0, *, products: int | None = None) -> None:
        """Demo/volume data: variants SKU-0001… (default n) at the main location, n orders an
        hour apart from 2025-01-01, ~60% fulfilled 30 minutes after creation."""
        rng = random.Random(rng_seed)
        start = len(self.variants)
        count = n if products is None else products
        for index in range(start + 1, start + 1 + count):
            self.add_variant(
                f"SKU-{index:04d}", rng.randint(0, 40), price=f"{rng.randint(5, 90)}.00"
            )
        skus = [v["sku"] for v in self.variants.values()]
        for index in range(n):
            first, last = rng.choice(("Ada", "Ben", "Chloé", "Dev")), rng.choice(("Ito", "Okafor"))
            picks = rng.sample(skus, k=min(len(skus), rng.randint(1, 3)))
            created = BASE_TIME + timedelta(hours=index)
            order = self.add_order(
                email=f"{first.lower()}.{last.lower()}{index}@example.com",
                first_name=first,
                last_name=last,
                items=[(sku, rng.randint(1, 3)) for sku in picks],
                created=created,
            )
            if rng.random() < 0.6:
                self.fulfill_order(order["id"], created + timedelta(minutes=30))

    # ------------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPNotFound:
            return web.json_response({"errors": "Not Found"}, status=404)
        return response

    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        call = ShopifyCall(None, {})
        self.calls.append(call)
        response = await self._answer(request, raw, call)
        call.status = response.status
        if self.after_request is not None:
            self.after_request(call)
        return response

    async def _answer(self, request: web.Request, raw: bytes, call: ShopifyCall) -> web.Response:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            call.variables = body.get("variables") or {}
            call.operation = operation_name(body)
        fault = self.faults.next_fault()
        if fault is not None:
            return fault_response(*fault)
        if not re.fullmatch(r"\d{4}-\d{2}|unstable", request.match_info["version"]):
            return web.json_response({"errors": "Not Found"}, status=404)
        if request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return web.json_response({"errors": INVALID_TOKEN}, status=401)
        if request.method != "POST":
            return web.json_response({"errors": "Not Found"}, status=404)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return web.json_response(
                {"errors": {"query": "Required parameter missing or invalid"}}, status=400
            )
        handler = self._operations().get(call.operation or "")
        if handler is None:
            known = ", ".join(sorted(self._operations()))
            message = (
                f"Unknown operation {call.operation or '(anonymous)'!r}: this sandbox answers only "
                f"the named operations {known}."
            )
            return web.json_response({"errors": [{"message": message}]}, status=400)
        query: str = body["query"]
        variables = call.variables if isinstance(call.variables, dict) else {}
        try:
            requested = self._requested_cost(call.operation or "", variables)
            throttled = self._spend_check(requested)
            if throttled is not None:
                call.throttled = True
                return web.json_response(throttled)
            data, actual = handler(query, variables)
        except GraphQLError as exc:
            error = {"message": str(exc), "extensions": {"code": exc.code, **exc.extra}}
            return web.json_response({"errors": [error], "extensions": self._cost(0, 0)})
        self._available -= actual
        payload = {"data": data, "extensions": self._cost(requested, actual)}
        if query.lstrip().startswith("mutation") and self.faults.take_drop():
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError()
        return web.json_response(payload)

    def _operations(self) -> dict[str, Callable[[str, dict[str, Any]], tuple[Any, int]]]:
        return {
            "ListOrders": self._list_orders,
            "GetOrder": self._get_order,
            "VariantsBySku": self._variants_by_sku,
            "SetInventory": self._set_inventory,
            "ListLocations": self._list_locations,
            "AddTags": self._add_tags,
        }

    # ------------------------------------------------------------------ cost and throttling

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self._refilled)
        level = min(self.bucket_size, self._available + elapsed * self.restore_rate)
        self._available = round(level, 6)  # no float dust: 401.99999 points is 402
        self._refilled = now

    def _requested_cost(self, operation: str, variables: dict[str, Any]) -> int:
        first = variables.get("first", 0)
        lines = variables.get("lineItems", 0)
        if not isinstance(first, int) or not isinstance(lines, int):
            raise GraphQLError("Variables `first` and `lineItems` must be integers.", "BAD_REQUEST")
        listing = operation in ("ListOrders", "VariantsBySku", "ListLocations")
        if listing and not 1 <= first <= MAX_FIRST:
            raise GraphQLError(
                f"The first argument must be between 1 and {MAX_FIRST}, got {first}.",
                "BAD_REQUEST",
            )
        costs = {
            "ListOrders": 2 + first * (3 + lines),
            "GetOrder": 1 + 3 + lines,
            "VariantsBySku": 2 + first * 4,
            "ListLocations": 2 + first,
        }
        cost = costs.get(operation, MUTATION_COST)
        if cost > self.bucket_size:
            raise GraphQLError(
                f"Query cost is {cost}, which exceeds the single query max cost limit "
                f"({self.bucket_size:g}).",
                "MAX_COST_EXCEEDED",
                cost=cost,
                maxCost=self.bucket_size,
            )
        return cost

    def _spend_check(self, requested: int) -> dict[str, Any] | None:
        self._refill()
        if requested <= self._available:
            return None
        error = {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
        return {"errors": [error], "extensions": self._cost(requested, None)}

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": float(self.bucket_size),
                    "currentlyAvailable": int(self._available),
                    "restoreRate": float(self.restore_rate),
                },
            }
        }

    # ------------------------------------------------------------------ orders

    def _order_node(self, order: dict[str, Any], lines: int) -> dict[str, Any]:
        node = {k: v for k, v in order.items() if k != "lineItems"}
        node["lineItems"] = {"nodes": order["lineItems"][: max(lines, 0)]}
        return node

    def _list_orders(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        first, lines = variables["first"], variables.get("lineItems", 0)
        orders = sorted(self.orders.values(), key=lambda o: (o["updatedAt"], o["id"]))
        orders = [o for o in orders if matches_order(o, str(variables.get("query") or ""))]
        after = variables.get("after")
        if after:
            key = decode_cursor(after)
            orders = [o for o in orders if (o["updatedAt"], o["id"]) > key]
        page = orders[:first]
        nodes = [self._order_node(o, lines) for o in page]
        cursors = [encode_cursor((o["updatedAt"], o["id"])) for o in page]
        actual = 2 + sum(3 + len(n["lineItems"]["nodes"]) for n in nodes)
        connection = connection_shape(query, nodes, cursors, has_next=len(orders) > first)
        return {"orders": connection}, actual

    def _get_order(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        order = self.orders.get(str(variables.get("id")))
        if order is None:
            return {"order": None}, 1
        node = self._order_node(order, variables.get("lineItems", 0))
        return {"order": node}, 4 + len(node["lineItems"]["nodes"])

    def _add_tags(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        order = self.orders.get(str(variables.get("id")))
        raw = variables.get("tags") or []
        tags = [t.strip() for t in (raw.split(",") if isinstance(raw, str) else raw) if t.strip()]
        if order is None:
            errors = [{"field": ["id"], "message": "Order does not exist"}]
            return {"tagsAdd": {"node": None, "userErrors": errors}}, MUTATION_COST
        order["tags"] = sorted({*order["tags"], *tags})
        order["updatedAt"] = iso(self.now())
        return {"tagsAdd": {"node": {"id": order["id"]}, "userErrors": []}}, MUTATION_COST

    # ------------------------------------------------------------------ inventory

    def _list_locations(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        nodes = list(self.locations.values())[: variables["first"]]
        cursors = [encode_cursor(("", n["id"])) for n in nodes]
        connection = connection_shape(
            query, nodes, cursors, has_next=len(self.locations) > len(nodes)
        )
        return {"locations": connection}, 2 + len(nodes)

    def _variants_by_sku(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        first = variables["first"]
        skus = parse_sku_query(str(variables.get("query") or ""))
        location = str(variables.get("locationId") or self.default_location)
        if location not in self.locations:
            raise GraphQLError(f"Invalid id: {location}", "BAD_REQUEST")
        variants = sorted(self.variants.values(), key=lambda v: v["id"])
        if skus is not None:
            variants = [v for v in variants if v["sku"] in skus]
        after = variables.get("after")
        if after:
            key = decode_cursor(after)
            variants = [v for v in variants if ("", v["id"]) > key]
        page = variants[:first]
        nodes = []
        for variant in page:
            item_id = variant["inventoryItem"]["id"]
            level = self.levels.get((item_id, location))
            inventory_level = None
            if level is not None:
                quantities = [{"name": "available", "quantity": level["available"]}]
                inventory_level = {"id": f"{item_id}?location={location}", "quantities": quantities}
            node = {k: v for k, v in variant.items() if k != "inventoryItem"}
            node["inventoryItem"] = {"id": item_id, "inventoryLevel": inventory_level}
            nodes.append(node)
        cursors = [encode_cursor(("", v["id"])) for v in page]
        connection = connection_shape(query, nodes, cursors, has_next=len(variants) > first)
        return {"productVariants": connection}, 2 + 4 * len(nodes)

    def _set_inventory(self, query: str, variables: dict[str, Any]) -> tuple[Any, int]:
        data = variables.get("input")
        if not isinstance(data, dict) or not isinstance(data.get("quantities"), list):
            raise GraphQLError(
                "Variable $input of type InventorySetQuantitiesInput! was provided invalid value",
                "INVALID_VARIABLE",
            )
        quantities: list[Any] = data["quantities"]
        if len(quantities) > MAX_INPUT:
            raise GraphQLError(
                f"The input array size of {len(quantities)} is greater than the maximum allowed "
                f"of {MAX_INPUT}.",
                "MAX_INPUT_SIZE_EXCEEDED",
            )
        name = data.get("name")
        errors: list[dict[str, Any]] = []
        if name not in ("available", "on_hand"):
            errors.append(
                user_error(
                    ["input", "name"],
                    "INVALID_NAME",
                    "The quantity name must be either 'available' or 'on_hand'.",
                )
            )
        if data.get("reason") not in REASONS:
            errors.append(
                user_error(
                    ["input", "reason"], "INVALID_REASON", "The specified reason is invalid."
                )
            )
        ignore_compare = bool(data.get("ignoreCompareQuantity"))
        planned: list[tuple[dict[str, int], int, str, str]] = []
        for index, entry in enumerate(quantities):
            where = ["input", "quantities", str(index)]
            problem = self._check_quantity(entry, where, ignore_compare, str(name))
            if isinstance(problem, dict):
                errors.append(problem)
            else:
                planned.append(problem)
        if errors:
            failed = {"inventoryAdjustmentGroup": None, "userErrors": errors}
            return {"inventorySetQuantities": failed}, MUTATION_COST
        changes = []
        for level, quantity, item_id, location_id in planned:
            delta = quantity - level[str(name)]
            level[str(name)] = quantity
            if name == "available":
                level["on_hand"] += delta
            changes.append(
                {
                    "name": name,
                    "delta": delta,
                    "quantityAfterChange": quantity,
                    "item": {"id": item_id},
                    "location": {"id": location_id},
                }
            )
        group = {
            "id": gid("InventoryAdjustmentGroup", self._next("Group")),
            "createdAt": iso(self.now()),
            "reason": data["reason"],
            "referenceDocumentUri": data.get("referenceDocumentUri"),
            "changes": changes,
        }
        payload: dict[str, Any] = {"inventoryAdjustmentGroup": group, "userErrors": []}
        return {"inventorySetQuantities": payload}, MUTATION_COST

    def _check_quantity(
        self, entry: Any, where: list[str], ignore_compare: bool, name: str
    ) -> dict[str, Any] | tuple[dict[str, int], int, str, str]:
        if not isinstance(entry, dict):
            return user_error(
                where, "INVALID_INVENTORY_ITEM", "The specified inventory item could not be found."
            )
        item_id, location_id = str(entry.get("inventoryItemId")), str(entry.get("locationId"))
        quantity = entry.get("quantity")
        if not any(v["inventoryItem"]["id"] == item_id for v in self.variants.values()):
            return user_error(
                [*where, "inventoryItemId"],
                "INVALID_INVENTORY_ITEM",
                "The specified inventory item could not be found.",
            )
        if location_id not in self.locations:
            return user_error(
                [*where, "locationId"],
                "INVALID_LOCATION",
                "The specified location could not be found.",
            )
        level = self.levels.get((item_id, location_id))
        if level is None:
            return user_error(
                [*where, "locationId"],
                "ITEM_NOT_STOCKED_AT_LOCATION",
                "The specified inventory item is not stocked at the location.",
            )
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            return user_error(
                [*where, "quantity"], "INVALID_QUANTITY_TOO_LOW", "The quantity is invalid."
            )
        if quantity > 1_000_000_000:
            return user_error(
                [*where, "quantity"],
                "INVALID_QUANTITY_TOO_HIGH",
                "The total quantity can't be higher than 1,000,000,000.",
            )
        if quantity < 0 and name == "on_hand":
            return user_error(
                [*where, "quantity"], "INVALID_QUANTITY_NEGATIVE", "The quantity can't be negative."
            )
        if not ignore_compare:
            if "compareQuantity" not in entry:
                return user_error(
                    [*where, "compareQuantity"],
                    "COMPARE_QUANTITY_REQUIRED",
                    "The compareQuantity argument must be given to each quantity or "
                    "ignored using ignoreCompareQuantity.",
                )
            if entry["compareQuantity"] != level[name]:
                return user_error(
                    [*where, "compareQuantity"],
                    "COMPARE_QUANTITY_STALE",
                    "The compareQuantity value does not match persisted value.",
                )
        return level, quantity, item_id, location_id


def fault_response(kind: str, retry_after: float) -> web.Response:
    if kind == "throttle":
        message = (
            "Exceeded 2 calls per second for api client. "
            "Reduce request rates to resume uninterrupted service."
        )
        return web.json_response(
            {"errors": message}, status=429, headers={"Retry-After": f"{retry_after:g}"}
        )
    if kind == "unavailable":
        return web.json_response({"errors": "Service Unavailable"}, status=503)
    return web.Response(status=200, text='{"data": {"orders": ', content_type="application/json")


def operation_name(body: dict[str, Any]) -> str | None:
    if isinstance(body.get("operationName"), str):
        return str(body["operationName"])
    match = OPERATION.search(str(body.get("query") or ""))
    return match.group(2) if match else None


def user_error(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message, "code": code}


def encode_cursor(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: Any) -> tuple[str, str]:
    try:
        first, second = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
    except (ValueError, TypeError):
        raise GraphQLError(
            f"Invalid cursor for current pagination sort: {cursor!r}", "BAD_REQUEST"
        ) from None
    return str(first), str(second)


def connection_shape(
    query: str, nodes: list[dict[str, Any]], cursors: list[str], *, has_next: bool
) -> dict[str, Any]:
    """A connection with the fields the query selects: `nodes`, `edges`, or both."""
    shape: dict[str, Any] = {}
    if re.search(r"\bnodes\b", query) or "edges" not in query:
        shape["nodes"] = nodes
    if re.search(r"\bedges\b", query):
        shape["edges"] = [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)]
    shape["pageInfo"] = {
        "hasNextPage": has_next,
        "hasPreviousPage": False,
        "endCursor": cursors[-1] if cursors else None,
        "startCursor": cursors[0] if cursors else None,
    }
    return shape


def matches_order(order: dict[str, Any], search: str) -> bool:
    """Shopify search syntax subset: space-separated `field:[op]value` terms, all must hold."""
    return all(term_holds(order, f, op, raw.strip("'\"")) for f, op, raw in TERM.findall(search))


def term_holds(order: dict[str, Any], field: str, op: str, value: str) -> bool:
    if field == "fulfillment_status":
        allowed = FULFILLMENT_FILTERS.get(value.lower(), set())
        return allowed is None or order["displayFulfillmentStatus"] in allowed
    if field in TIME_FIELDS:
        bound, stamp = parse_iso(value), parse_iso(order[TIME_FIELDS[field]])
        return bound is not None and stamp is not None and compare_times(stamp, op or "=", bound)
    if field == "email":
        return bool(order["email"].lower() == value.lower())
    if field == "tag":
        return value in order["tags"]
    return True  # Shopify ignores unknown search fields


def compare_times(stamp: datetime, op: str, bound: datetime) -> bool:
    return {
        ">": stamp > bound,
        ">=": stamp >= bound,
        "<": stamp < bound,
        "<=": stamp <= bound,
    }.get(op, stamp == bound)


def parse_sku_query(search: str) -> set[str] | None:
    """`sku:A OR sku:B` → {"A", "B"}; an empty query matches every variant (None)."""
    if not search.strip():
        return None
    return {value.strip("'\"") for field, _op, value in TERM.findall(search) if field == "sku"}
