"""`WooCommerceServer`, the fake shop's HTTP side: routes, the middleware that records
requests, authentication, fault injection and an optional rate limit."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from flowkit.sandbox.faults import Faults
from flowkit.sandbox.woocommerce.resources import _Resources
from flowkit.sandbox.woocommerce.wire import (
    BASE,
    JSON_BODY,
    DropConnection,
    InvalidParam,
    Received,
    wp_error,
)


class WooCommerceServer(_Resources):
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

    # ------------------------------------------------------------------ rate limit

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
