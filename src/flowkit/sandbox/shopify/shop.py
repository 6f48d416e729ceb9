"""The Shopify sandbox's shop: locations, variants, inventory levels and orders, the builders
that add them (also the demo `seed`) and the lookups tests use."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flowkit.sandbox.shopify.wire import gid, iso
from flowkit.sandbox.times import BASE_TIME


class _Shop:
    """The state of one shop and the in-process ways to change it (no HTTP)."""

    now: Callable[[], datetime]
    currency: str
    locations: dict[str, dict[str, Any]]
    variants: dict[str, dict[str, Any]]
    levels: dict[tuple[str, str], dict[str, int]]
    orders: dict[str, dict[str, Any]]
    _ids: dict[str, int]

    # ------------------------------------------------------------------ inspection helpers

    def available(self, sku: str, location_id: str | None = None) -> int | None:
        variant = next((v for v in self.variants.values() if v["sku"] == sku), None)
        if variant is None:
            return None
        level = self.levels.get(
            (variant["inventoryItem"]["id"], location_id or self.default_location)
        )
        return None if level is None else level["available"]

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
