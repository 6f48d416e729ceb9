"""The WooCommerce sandbox's route handlers per resource (orders, products, reviews) and the
pagination of their collections (`X-WP-Total`, `X-WP-TotalPages`, `Link`)."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from flowkit.sandbox.faults import Faults
from flowkit.sandbox.times import parse_iso
from flowkit.sandbox.woocommerce.shop import _Shop
from flowkit.sandbox.woocommerce.wire import (
    BATCH_LIMIT,
    JSON_BODY,
    MAX_PER_PAGE,
    ORDER_STATUSES,
    DropConnection,
    InvalidParam,
    compare,
    int_param,
    item_error,
    list_param,
    wc_time,
    wp_error,
)


class _Resources(_Shop):
    """One handler per route; `WooCommerceServer._build_app` wires them."""

    faults: Faults

    # ------------------------------------------------------------------ pagination

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
                bound = parse_iso(query[name])
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
