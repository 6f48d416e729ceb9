"""A local, stateful stand-in for the WooCommerce REST API v3 (`/wp-json/wc/v3`).

It follows the public reference for the parts flowkit uses, so the connector can be tested over
real HTTP and the sandbox can demo recipes with no shop anywhere:

* auth: HTTP Basic with the consumer key/secret, or `consumer_key`/`consumer_secret` query
  parameters; errors `woocommerce_rest_authentication_error` ("Consumer key is invalid.",
  "Consumer secret is invalid.") and `woocommerce_rest_cannot_view` when none is sent (401);
* `GET orders` (`status`, `after`/`before`, `modified_after`/`modified_before`, `page`,
  `per_page` 1..100, `orderby`, `order`, `include`), `GET/PUT/POST orders/{id}`;
* `GET products` (`sku` comma list, `include`, paging), `GET/PUT products/{id}`,
  `POST products/batch` (at most 100 items, else 413 `woocommerce_rest_request_entity_too_large`
  as in `WC_REST_Controller::check_batch_limit`; per-item errors inside the response);
* `GET products/reviews` (`product`, `reviewer_email`, `status`, paging), `POST products/reviews`;
* collections carry `X-WP-Total`, `X-WP-TotalPages` and a `Link` header (`rel="next"`/`"prev"`);
* errors are WordPress REST errors: `{"code": ..., "message": ..., "data": {"status": N}}`.

The site timezone is UTC, so `date_x` and `date_x_gmt` are equal. Real WooCommerce has no rate
limit by default; `faults` adds 429s, 503s, malformed bodies, latency and dropped connections for
tests (see `Faults`).

References followed:
  https://woocommerce.github.io/woocommerce-rest-api-docs/  (pagination, errors, auth)
  https://developer.woocommerce.com/docs/apis/rest-api/v3/product-reviews/
  https://developer.woocommerce.com/docs/apis/rest-api/  (orders, products, batch)
  woocommerce/woocommerce: includes/rest-api/Controllers/Version3/class-wc-rest-controller.php
  (batch limit 100, per-item error shape) and class-wc-rest-authentication.php (401 messages)
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from flowkit.sandbox.faults import Faults

__all__ = ["Faults", "Received", "WooCommerceServer"]

BASE = "/wp-json/wc/v3"
ORDER_STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
)
BATCH_LIMIT = 100
# The parsed JSON object of a request body, for the handlers.
JSON_BODY: web.RequestKey[dict[str, Any]] = web.RequestKey("json_body", dict)
MAX_PER_PAGE = 100
FIRST_NAMES = ("Ada", "Ben", "Chloé", "Dev", "Emil", "Fatima", "Gus", "Hana", "Ivo", "Jo")
LAST_NAMES = ("Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka", "Ueda")
BASE_TIME = datetime(2025, 1, 1, 9, 0, 0, tzinfo=UTC)


@dataclass
class Received:
    """One request the server saw (after fault injection decided its fate)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


class DropConnection(Exception):
    """Raised by a handler after applying a write, to close the socket without an answer."""


def wp_error(code: str, message: str, status: int, **data: Any) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "data": {"status": status, **data}}, status=status
    )


def wc_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(raw: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def list_param(query: MultiMapping[str], name: str) -> list[str]:
    """WordPress array params: `name=a,b`, `name[]=a&name[]=b` or repeated `name`."""
    values = [*query.getall(name, []), *query.getall(f"{name}[]", [])]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


class InvalidParam(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


class WooCommerceServer:
    """The fake shop: `app` serves it; `products`, `orders`, `reviews` hold its state."""

    def __init__(
        self,
        *,
        consumer_key: str = "ck_sandbox",
        consumer_secret: str = "cs_sandbox",
        clock: Callable[[], datetime] | None = None,
        currency: str = "EUR",
    ) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.clock = clock or (lambda: datetime.now(UTC))
        self.currency = currency
        self.faults = Faults()
        self._rate: tuple[float, float] | None = None  # (requests per second, burst)
        self._tokens = 0.0
        self._tokens_at = 0.0
        self.products: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.reviews: dict[int, dict[str, Any]] = {}
        self.requests: list[Received] = []
        # Called after each answer: lets a test change the shop between two requests.
        self.after_request: Callable[[Received], None] | None = None
        self._ids = {"product": 100, "order": 1000, "review": 0, "item": 0, "meta": 0}
        self.app = self._build_app()

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

    def limit_rate(self, per_second: float | None, burst: int = 1) -> None:
        """Answer 429 with `Retry-After` beyond `per_second` requests (a host or proxy limit;
        WooCommerce itself has none). None removes the limit."""
        self._rate = None if per_second is None else (per_second, float(burst))
        self._tokens = float(burst)
        self._tokens_at = self.clock().timestamp()

    def _over_rate_limit(self) -> tuple[str, float] | None:
        if self._rate is None:
            return None
        rate, burst = self._rate
        now = self.clock().timestamp()
        self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return "throttle", float(math.ceil((1 - self._tokens) / rate))

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

    # ------------------------------------------------------------------ HTTP plumbing

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        routes = [
            ("GET", "/orders", self._list_orders),
            ("GET", "/orders/{id}", self._get_order),
            ("PUT", "/orders/{id}", self._update_order),
            ("POST", "/orders/{id}", self._update_order),
            ("GET", "/products", self._list_products),
            ("POST", "/products/batch", self._batch_products),
            ("GET", "/products/reviews", self._list_reviews),
            ("POST", "/products/reviews", self._create_review),
            ("GET", "/products/{id}", self._get_product),
            ("PUT", "/products/{id}", self._update_product),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, BASE + path, handler)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        record = Received(request.method, request.path, dict(request.query), body)
        self.requests.append(record)
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        response = await self._dispatch(request, handler, raw, body)
        record.status = response.status
        if self.after_request is not None:
            self.after_request(record)
        return response

    async def _dispatch(
        self, request: web.Request, handler: Callable[[web.Request], Any], raw: bytes, body: Any
    ) -> web.StreamResponse:
        fault = self.faults.next_fault() or self._over_rate_limit()
        if fault is not None:
            return self._fault_response(*fault)
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if raw and isinstance(body, str):
            return wp_error("rest_invalid_json", "Invalid JSON body passed.", 400)
        request[JSON_BODY] = body if isinstance(body, dict) else {}
        try:
            response: web.StreamResponse = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            return wp_error(
                "rest_no_route", "No route was found matching the URL and request method.", 404
            )
        except InvalidParam as exc:
            return wp_error(
                "rest_invalid_param",
                f"Invalid parameter(s): {exc.name}",
                400,
                params={exc.name: exc.reason},
            )
        except DropConnection:
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError() from None
        return response

    def _fault_response(self, kind: str, retry_after: float) -> web.Response:
        if kind == "throttle":
            response = wp_error(
                "woocommerce_rest_too_many_requests",
                "Too many requests. Please wait and try again.",
                429,
            )
            response.headers["Retry-After"] = f"{retry_after:g}"
            return response
        if kind == "unavailable":
            return web.Response(
                status=503,
                text="<html><body>Service Unavailable</body></html>",
                content_type="text/html",
            )
        return web.Response(
            status=200, text='{"id": 1, "status": ', content_type="application/json"
        )

    def _authenticate(self, request: web.Request) -> web.Response | None:
        key = secret = None
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except ValueError:
                decoded = ""
            key, _, secret = decoded.partition(":")
        elif "consumer_key" in request.query:
            key = request.query.get("consumer_key")
            secret = request.query.get("consumer_secret", "")
        if not key:
            if request.method == "GET":
                return wp_error(
                    "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401
                )
            return wp_error(
                "woocommerce_rest_cannot_edit",
                "Sorry, you are not allowed to edit this resource.",
                401,
            )
        if key != self.consumer_key:
            return wp_error(
                "woocommerce_rest_authentication_error", "Consumer key is invalid.", 401
            )
        if secret != self.consumer_secret:
            return wp_error(
                "woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401
            )
        return None

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        page = int_param(request.query, "page", 1, 1, None)
        per_page = int_param(request.query, "per_page", 10, 1, MAX_PER_PAGE)
        total = len(items)
        pages = math.ceil(total / per_page) if total else 0
        chunk = items[(page - 1) * per_page : page * per_page]
        response = web.json_response(chunk)
        response.headers["X-WP-Total"] = str(total)
        response.headers["X-WP-TotalPages"] = str(pages)
        links = []
        if page > 1:
            links.append(f'<{request.url.update_query(page=page - 1)}>; rel="prev"')
        if page < pages:
            links.append(f'<{request.url.update_query(page=page + 1)}>; rel="next"')
        if links:
            response.headers["Link"] = ", ".join(links)
        return response

    # ------------------------------------------------------------------ orders

    async def _list_orders(self, request: web.Request) -> web.Response:
        query = request.query
        statuses = list_param(query, "status") or ["any"]
        for status in statuses:
            if status != "any" and status not in ORDER_STATUSES:
                allowed = ", ".join(("any", *ORDER_STATUSES))
                raise InvalidParam("status", f"status[0] is not one of {allowed}.")
        orders = [
            o
            for o in self.orders.values()
            if ("any" in statuses and o["status"] != "trash") or o["status"] in statuses
        ]
        include = {int(i) for i in list_param(query, "include") if i.isdigit()}
        if include:
            orders = [o for o in orders if o["id"] in include]
        for name, column, after in (
            ("after", "date_created_gmt", True),
            ("before", "date_created_gmt", False),
            ("modified_after", "date_modified_gmt", True),
            ("modified_before", "date_modified_gmt", False),
        ):
            if name in query:
                bound = parse_time(query[name])
                if bound is None:
                    raise InvalidParam(name, "Invalid date.")
                orders = [o for o in orders if compare(o[column], bound, after)]
        orderby = query.get("orderby", "date")
        columns = {"date": "date_created_gmt", "modified": "date_modified_gmt", "id": "id"}
        columns |= {"include": "id", "title": "id", "slug": "id"}
        if orderby not in columns:
            raise InvalidParam(
                "orderby", "orderby is not one of date, id, include, title, slug, modified."
            )
        direction = query.get("order", "desc")
        if direction not in ("asc", "desc"):
            raise InvalidParam("order", "order is not one of asc, desc.")
        column = columns[orderby]
        orders.sort(key=lambda o: (o[column], o["id"]), reverse=direction == "desc")
        return self._page(request, orders)

    def _order_or_404(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = request.match_info["id"]
        order = self.orders.get(int(raw)) if raw.isdigit() else None
        if order is None:
            return wp_error("woocommerce_rest_shop_order_invalid_id", "Invalid ID.", 404)
        return order

    async def _get_order(self, request: web.Request) -> web.Response:
        found = self._order_or_404(request)
        return found if isinstance(found, web.Response) else web.json_response(found)

    async def _update_order(self, request: web.Request) -> web.Response:
        found = self._order_or_404(request)
        if isinstance(found, web.Response):
            return found
        body: dict[str, Any] = request[JSON_BODY]
        status = body.get("status")
        if status is not None and status not in ORDER_STATUSES:
            raise InvalidParam("status", f"status is not one of {', '.join(ORDER_STATUSES)}.")
        if status is not None and status != found["status"]:
            self.set_order_status(found["id"], status)
        for entry in body.get("meta_data") or []:
            if not isinstance(entry, dict) or "key" not in entry:
                raise InvalidParam("meta_data", "meta_data[0][key] is a required property.")
            existing = next((m for m in found["meta_data"] if m["key"] == entry["key"]), None)
            if existing is not None:
                existing["value"] = entry.get("value")
            else:
                meta_id = self._next("meta")
                found["meta_data"].append(
                    {"id": meta_id, "key": entry["key"], "value": entry.get("value")}
                )
        if "customer_note" in body:
            found["customer_note"] = str(body["customer_note"])
        stamp = wc_time(self.clock())
        found["date_modified"] = found["date_modified_gmt"] = stamp
        if self.faults.take_drop():
            raise DropConnection
        return web.json_response(found)

    # ------------------------------------------------------------------ products

    async def _list_products(self, request: web.Request) -> web.Response:
        query = request.query
        products = list(self.products.values())
        skus = list_param(query, "sku")
        if skus:
            wanted = set(skus)
            products = [p for p in products if p["sku"] in wanted]
        include = {int(i) for i in list_param(query, "include") if i.isdigit()}
        if include:
            products = [p for p in products if p["id"] in include]
        direction = query.get("order", "desc")
        products.sort(key=lambda p: (p["date_created_gmt"], p["id"]), reverse=direction == "desc")
        return self._page(request, products)

    async def _get_product(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        product = self.products.get(int(raw)) if raw.isdigit() else None
        if product is None:
            return wp_error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
        return web.json_response(product)

    async def _update_product(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        body: dict[str, Any] = request[JSON_BODY]
        outcome = self._apply_product_update({**body, "id": raw})
        if "error" in outcome:
            error = outcome["error"]
            return wp_error(error["code"], error["message"], error["data"]["status"])
        if self.faults.take_drop():
            raise DropConnection
        return web.json_response(outcome)

    def _apply_product_update(self, item: dict[str, Any]) -> dict[str, Any]:
        raw_id = item.get("id")
        product_id = int(str(raw_id)) if str(raw_id).isdigit() else 0
        product = self.products.get(product_id)
        if product is None:
            return item_error(raw_id, "woocommerce_rest_product_invalid_id", "Invalid ID.", 400)
        quantity = item.get("stock_quantity", product["stock_quantity"])
        if quantity is not None and (isinstance(quantity, bool) or not isinstance(quantity, int)):
            return item_error(
                raw_id, "rest_invalid_param", "Invalid parameter(s): stock_quantity", 400
            )
        if "manage_stock" in item:
            product["manage_stock"] = bool(item["manage_stock"])
        if "stock_quantity" in item and product["manage_stock"]:
            product["stock_quantity"] = quantity
            product["stock_status"] = "instock" if (quantity or 0) > 0 else "outofstock"
        for name in ("name", "regular_price"):
            if name in item:
                product[name] = str(item[name])
        stamp = wc_time(self.clock())
        product["date_modified"] = product["date_modified_gmt"] = stamp
        return dict(product)

    async def _batch_products(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = request[JSON_BODY]
        groups = {name: body.get(name) or [] for name in ("create", "update", "delete")}
        if sum(len(items) for items in groups.values()) > BATCH_LIMIT:
            return wp_error(
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {BATCH_LIMIT} items for this request.",
                413,
            )
        if groups["create"] or groups["delete"]:
            return wp_error(
                "woocommerce_rest_sandbox_unsupported",
                "This sandbox supports only `update` in products/batch.",
                400,
            )
        result = {"update": [self._apply_product_update(dict(item)) for item in groups["update"]]}
        if self.faults.take_drop():
            raise DropConnection
        return web.json_response(result)

    # ------------------------------------------------------------------ reviews

    async def _list_reviews(self, request: web.Request) -> web.Response:
        query = request.query
        reviews = list(self.reviews.values())
        products = {int(p) for p in list_param(query, "product") if p.isdigit()}
        if products:
            reviews = [r for r in reviews if r["product_id"] in products]
        emails = {e.lower() for e in list_param(query, "reviewer_email")}
        if emails:
            reviews = [r for r in reviews if r["reviewer_email"].lower() in emails]
        status = query.get("status", "approved")
        if status != "all":
            reviews = [r for r in reviews if r["status"] == status]
        reviews.sort(key=lambda r: (r["date_created_gmt"], r["id"]), reverse=True)
        return self._page(request, reviews)

    async def _create_review(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = request[JSON_BODY]
        missing = [
            k for k in ("product_id", "review", "reviewer", "reviewer_email") if not body.get(k)
        ]
        if missing:
            return wp_error(
                "rest_missing_callback_param",
                f"Missing parameter(s): {', '.join(missing)}",
                400,
                params=missing,
            )
        product_id = body["product_id"]
        if product_id not in self.products:
            return wp_error("woocommerce_rest_product_invalid_id", "Invalid product ID.", 404)
        review = self.add_review(
            product_id,
            str(body["reviewer_email"]),
            rating=int(body.get("rating", 5)),
            text=str(body["review"]),
        )
        review["reviewer"] = str(body["reviewer"])
        return web.json_response(review, status=201)


def item_error(item_id: Any, code: str, message: str, status: int) -> dict[str, Any]:
    return {"id": item_id, "error": {"code": code, "message": message, "data": {"status": status}}}


def compare(stamp: str, bound: datetime, after: bool) -> bool:
    moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return moment > bound if after else moment < bound


def int_param(query: MultiMapping[str], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParam(name, f"{name} is not of type integer.") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} (inclusive) and {high} (inclusive)" if high else f">= {low}"
        raise InvalidParam(name, f"{name} must be {bounds}")
    return value
