"""`ShopifyServer`, the fake shop's HTTP side: the GraphQL endpoint, authentication, fault
injection, the calculated query cost and its leaky bucket, and the request record."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from flowkit.sandbox.faults import Faults
from flowkit.sandbox.shopify.operations import _Operations
from flowkit.sandbox.shopify.wire import (
    INVALID_TOKEN,
    MAX_FIRST,
    MUTATION_COST,
    GraphQLError,
    ShopifyCall,
    fault_response,
    operation_name,
)


class ShopifyServer(_Operations):
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

    def set_bucket(self, currently_available: float) -> None:
        """Force the bucket's level (e.g. 0 to make the next query THROTTLED)."""
        self._available = currently_available
        self._refilled = self.clock()

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
