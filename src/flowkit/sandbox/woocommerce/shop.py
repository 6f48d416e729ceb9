"""The WooCommerce sandbox's shop: products, orders and reviews, the builders that add them
(also the demo `seed`) and the lookups tests use."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flowkit.sandbox.times import BASE_TIME
from flowkit.sandbox.woocommerce.wire import BASE, Received, wc_time

FIRST_NAMES = ("Ada", "Ben", "Chloé", "Dev", "Emil", "Fatima", "Gus", "Hana", "Ivo", "Jo")
LAST_NAMES = ("Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka", "Ueda")


class _Shop:
    """The state of one shop and the in-process ways to change and read it (no HTTP)."""

    clock: Callable[[], datetime]
    currency: str
    products: dict[int, dict[str, Any]]
    orders: dict[int, dict[str, Any]]
    reviews: dict[int, dict[str, Any]]
    requests: list[Received]
    _ids: dict[str, int]

    # ------------------------------------------------------------------ inspection helpers

    def writes(self) -> list[Received]:
        """Every non-GET request that reached the API (auth passed or not)."""
        return [r for r in self.requests if r.method != "GET"]

    def batch_calls(self) -> list[Received]:
        return [r for r in self.requests if r.path == f"{BASE}/products/batch"]

    def stock(self, sku: str) -> int | None:
        product = self.product_by_sku(sku)
        return None if product is None else product["stock_quantity"]

    def product_by_sku(self, sku: str) -> dict[str, Any] | None:
        return next((p for p in self.products.values() if p["sku"] == sku), None)

    # ------------------------------------------------------------------ state builders

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def add_product(
        self,
        sku: str,
        stock_quantity: int | None = 0,
        *,
        name: str | None = None,
        price: str = "10.00",
        manage_stock: bool = True,
    ) -> dict[str, Any]:
        now = wc_time(self.clock())
        product_id = self._next("product")
        product = {
            "id": product_id,
            "name": name or f"Product {sku}",
            "slug": sku.lower(),
            "type": "simple",
            "status": "publish",
            "sku": sku,
            "price": price,
            "regular_price": price,
            "sale_price": "",
            "manage_stock": manage_stock,
            "stock_quantity": stock_quantity if manage_stock else None,
            "stock_status": "instock" if (stock_quantity or 0) > 0 else "outofstock",
            "date_created": now,
            "date_created_gmt": now,
            "date_modified": now,
            "date_modified_gmt": now,
        }
        self.products[product_id] = product
        return product

    def add_order(
        self,
        *,
        email: str,
        first_name: str = "Sam",
        last_name: str = "Buyer",
        items: list[tuple[int, int]] | None = None,
        status: str = "processing",
        created: datetime | None = None,
    ) -> dict[str, Any]:
        """Create an order; `items` are (product_id, quantity) pairs of existing products."""
        at = wc_time(created or self.clock())
        order_id = self._next("order")
        line_items = []
        total = 0.0
        for product_id, quantity in items or []:
            product = self.products[product_id]
            line_total = float(product["price"]) * quantity
            total += line_total
            line_items.append(
                {
                    "id": self._next("item"),
                    "name": product["name"],
                    "product_id": product_id,
                    "variation_id": 0,
                    "quantity": quantity,
                    "sku": product["sku"],
                    "price": float(product["price"]),
                    "subtotal": f"{line_total:.2f}",
                    "total": f"{line_total:.2f}",
                }
            )
        address = {"first_name": first_name, "last_name": last_name, "company": ""}
        address |= {"address_1": "1 Sandbox Street", "address_2": "", "city": "Lyon"}
        address |= {"state": "", "postcode": "69001", "country": "FR"}
        order = {
            "id": order_id,
            "parent_id": 0,
            "number": str(order_id),
            "order_key": f"wc_order_{order_id:08x}",
            "created_via": "checkout",
            "status": status,
            "currency": self.currency,
            "date_created": at,
            "date_created_gmt": at,
            "date_modified": at,
            "date_modified_gmt": at,
            "date_paid": at if status in ("processing", "completed") else None,
            "date_paid_gmt": at if status in ("processing", "completed") else None,
            "date_completed": at if status == "completed" else None,
            "date_completed_gmt": at if status == "completed" else None,
            "total": f"{total:.2f}",
            "customer_id": 0,
            "customer_note": "",
            "billing": {**address, "email": email, "phone": ""},
            "shipping": dict(address),
            "payment_method": "stripe",
            "payment_method_title": "Credit card",
            "line_items": line_items,
            "meta_data": [],
        }
        self.orders[order_id] = order
        return order

    def set_order_status(self, order_id: int, status: str, at: datetime | None = None) -> None:
        """Change an order's status the way the shop admin would (updates modified dates)."""
        order = self.orders[order_id]
        stamp = wc_time(at or self.clock())
        order["status"] = status
        order["date_modified"] = order["date_modified_gmt"] = stamp
        if status == "completed":
            order["date_completed"] = order["date_completed_gmt"] = stamp

    def add_review(
        self, product_id: int, email: str, *, rating: int = 5, text: str = "Great!"
    ) -> dict[str, Any]:
        now = wc_time(self.clock())
        review_id = self._next("review")
        review = {
            "id": review_id,
            "date_created": now,
            "date_created_gmt": now,
            "product_id": product_id,
            "product_name": self.products[product_id]["name"],
            "status": "approved",
            "reviewer": email.split("@")[0],
            "reviewer_email": email,
            "review": text,
            "rating": rating,
            "verified": False,
        }
        self.reviews[review_id] = review
        return review

    def seed(self, n: int, rng_seed: int = 0, *, products: int | None = None) -> None:
        """Demo/volume data: `products` products (default n) SKU-0001…, n orders spread one
        hour apart from 2025-01-01, ~60% completed, and a few reviews."""
        rng = random.Random(rng_seed)
        start = len(self.products)
        for index in range(start + 1, start + 1 + (n if products is None else products)):
            self.add_product(
                f"SKU-{index:04d}", rng.randint(0, 40), price=f"{rng.randint(5, 90)}.00"
            )
        product_ids = list(self.products)
        for index in range(n):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first.lower()}.{last.lower()}{index}@example.com"
            picks = rng.sample(product_ids, k=min(len(product_ids), rng.randint(1, 3)))
            items = [(pid, rng.randint(1, 3)) for pid in picks]
            created = BASE_TIME + timedelta(hours=index)
            status = "completed" if rng.random() < 0.6 else rng.choice(("processing", "on-hold"))
            order = self.add_order(
                email=email, first_name=first, last_name=last, items=items, created=created
            )
            if status != "processing":
                self.set_order_status(order["id"], status, created + timedelta(minutes=30))
            if status == "completed" and items and rng.random() < 0.2:
                self.add_review(items[0][0], email, rating=rng.randint(3, 5))
