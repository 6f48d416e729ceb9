"""The `woocommerce` connector: orders, product reviews and stock levels over the REST API v3.

Calls go to `{base_url}/wp-json/wc/v3/...` through the shared `HttpClient`, authenticated with
the store's REST API keys: HTTP Basic (`consumer_key:consumer_secret`) by default, or the
`consumer_key`/`consumer_secret` query parameters (`auth: query`) for hosts that strip the
`Authorization` header. Errors keep WordPress' own words and code
(`Consumer key is invalid. (woocommerce_rest_authentication_error)`).

`list_orders` is a trigger: it reads orders modified after the stored cursor (minus a small
overlap, deduplicated by the engine's item journal) in ascending `modified` order and pages by
moving the `modified_after` bound forward (keyset paging), so an order modified while the run
pages moves to the end instead of shifting an unread order out of reach. The new cursor is the
newest `date_modified_gmt` read.

`set_stock` reads the current levels by SKU, writes only the SKUs whose level differs through
`POST products/batch` in chunks of at most 100 updates (WooCommerce's batch limit) and reports
per-item errors from the batch answer. Setting an absolute level is naturally idempotent, so the
engine may repeat it after an unknown outcome; `plan()` shows `SKU stock old -> new` for dry runs.

Layout: `models` (settings, inputs, outputs), `wire` (limits, WordPress errors, times),
`session` (the HTTP session and the REST API keys), this module (the actions and the
`connector` object).

References followed:
  https://woocommerce.github.io/woocommerce-rest-api-docs/  (auth, pagination, errors, batch)
  https://developer.woocommerce.com/docs/apis/rest-api/v3/product-reviews/
  https://developer.woocommerce.com/docs/apis/rest-api/  (orders, products)
  woocommerce/woocommerce: includes/rest-api/Controllers/Version3/class-wc-rest-controller.php
  (batch limit 100 -> 413 woocommerce_rest_request_entity_too_large; per-item errors)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flowkit.connectors.base import (
    Action,
    CallContext,
    Change,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
    newest_time,
    parse_time,
)
from flowkit.connectors.stock import chunks
from flowkit.connectors.woocommerce.models import (
    GetOrderInput,
    GetStockInput,
    GetStockOutput,
    HasReviewInput,
    HasReviewOutput,
    ItemError,
    ListOrdersInput,
    ListOrdersOutput,
    ListReviewsInput,
    ListReviewsOutput,
    Order,
    Review,
    SetStockInput,
    SetStockOutput,
    StockLevel,
    StockUpdate,
    UpdateOrderInput,
    WooCommerceSettings,
)
from flowkit.connectors.woocommerce.session import WooCommerceSession, _close, _open
from flowkit.connectors.woocommerce.wire import (
    BATCH_LIMIT,
    MAX_PER_PAGE,
    MAX_REQUESTS,
    total_pages,
    utc,
)

__all__ = ["WooCommerceSession", "WooCommerceSettings", "connector"]

DOCS_URL = "https://woocommerce.github.io/woocommerce-rest-api-docs/"


class ListOrders(Action[ListOrdersInput, ListOrdersOutput]):
    name = "list_orders"
    description = "Orders with the given status modified since the cursor (a trigger)."
    effect = Effect.READ
    Input = ListOrdersInput
    Output = ListOrdersOutput

    async def run(
        self, session: WooCommerceSession, input: ListOrdersInput, call: CallContext
    ) -> ListOrdersOutput:
        statuses = input.status if isinstance(input.status, list) else [input.status]
        bound: datetime | None = None
        if input.cursor:
            bound = parse_time(input.cursor, "cursor") - timedelta(seconds=input.overlap_seconds)
        seen: dict[int, dict[str, Any]] = {}
        page = 1
        for _ in range(MAX_REQUESTS):
            params: dict[str, Any] = {
                "status": ",".join(statuses),
                "orderby": "modified",
                "order": "asc",
                "per_page": input.per_page,
                "page": page,
                "dates_are_gmt": "true",
            }
            if bound is not None:
                params["modified_after"] = bound.strftime("%Y-%m-%dT%H:%M:%S")
            response = await session.get("orders", params)
            batch = session.page_json(response)
            for order in batch:
                seen[int(order["id"])] = order  # read again after a change: keep the newest
            if len(batch) < input.per_page or page >= total_pages(response):
                break
            # Keyset paging: restart just before the last modified time read (ties included);
            # if a whole page shares that second, step through it by page number instead.
            last = parse_time(str(batch[-1].get("date_modified_gmt")), "date_modified_gmt")
            following = last - timedelta(seconds=1)
            if bound is None or following > bound:
                bound, page = following, 1
            else:
                page += 1
        else:
            raise ConnectorError(
                f"list_orders did not finish within {MAX_REQUESTS} requests",
                kind=ErrorKind.PERMANENT,
            )
        orders = sorted(
            (Order.from_api(raw) for raw in seen.values()),
            key=lambda o: (o.modified_at or "", o.id),
        )
        # the newest modified time read, never older than the previous cursor
        cursor = newest_time((o.modified_at for o in orders), "modified_at", input.cursor)
        return ListOrdersOutput(items=orders, cursor=cursor)


class GetOrder(Action[GetOrderInput, Order]):
    name = "get_order"
    description = "One order by ID."
    effect = Effect.READ
    Input = GetOrderInput
    Output = Order

    async def run(
        self, session: WooCommerceSession, input: GetOrderInput, call: CallContext
    ) -> Order:
        response = await session.get(f"orders/{input.id}")
        return Order.from_api(session.client.json(response))


class UpdateOrder(Action[UpdateOrderInput, Order]):
    name = "update_order"
    description = "Set an order's status, meta data or customer note (absolute values)."
    effect = Effect.WRITE
    idempotency = Idempotency.NATURAL
    Input = UpdateOrderInput
    Output = Order

    async def run(
        self, session: WooCommerceSession, input: UpdateOrderInput, call: CallContext
    ) -> Order:
        body: dict[str, Any] = {}
        if input.status is not None:
            body["status"] = input.status
        if input.meta:
            body["meta_data"] = [{"key": k, "value": v} for k, v in sorted(input.meta.items())]
        if input.customer_note is not None:
            body["customer_note"] = input.customer_note
        if not body:
            raise ConnectorError(
                "update_order needs at least one of status, meta, customer_note",
                kind=ErrorKind.VALIDATION,
            )
        return Order.from_api(await session.send("PUT", f"orders/{input.id}", body))


class ListReviews(Action[ListReviewsInput, ListReviewsOutput]):
    name = "list_reviews"
    description = "Product reviews, by product IDs and/or reviewer email."
    effect = Effect.READ
    Input = ListReviewsInput
    Output = ListReviewsOutput

    async def run(
        self, session: WooCommerceSession, input: ListReviewsInput, call: CallContext
    ) -> ListReviewsOutput:
        return ListReviewsOutput(
            items=await reviews(session, input.product_ids, input.reviewer_email, input.status)
        )


async def reviews(
    session: WooCommerceSession, product_ids: list[int], email: str | None, status: str
) -> list[Review]:
    params: dict[str, Any] = {"per_page": MAX_PER_PAGE, "status": status}
    if product_ids:
        params["product"] = ",".join(str(p) for p in sorted(set(product_ids)))
    if email:
        params["reviewer_email"] = email
    found = []
    for raw in await session.all_pages("products/reviews", params):
        if email and str(raw.get("reviewer_email", "")).casefold() != email.casefold():
            continue  # WordPress matches emails exactly; be strict about what we count
        found.append(Review.model_validate({**raw, "created_at": utc(raw.get("date_created_gmt"))}))
    return found


class HasReview(Action[HasReviewInput, HasReviewOutput]):
    name = "has_review"
    description = "Whether this email reviewed any of the products (approved or held)."
    effect = Effect.READ
    Input = HasReviewInput
    Output = HasReviewOutput

    async def run(
        self, session: WooCommerceSession, input: HasReviewInput, call: CallContext
    ) -> HasReviewOutput:
        found = await reviews(session, input.product_ids, input.email, "all")
        counted = [r for r in found if r.status in ("approved", "hold")]
        return HasReviewOutput(exists=bool(counted), count=len(counted))


class GetStock(Action[GetStockInput, GetStockOutput]):
    name = "get_stock"
    description = "Stock levels of products by SKU."
    effect = Effect.READ
    Input = GetStockInput
    Output = GetStockOutput

    async def run(
        self, session: WooCommerceSession, input: GetStockInput, call: CallContext
    ) -> GetStockOutput:
        products = await session.stock_levels(input.skus)
        items = [stock_level(products[sku]) for sku in input.skus if sku in products]
        missing = [sku for sku in input.skus if sku not in products]
        return GetStockOutput(items=items, missing=missing)


def stock_level(product: dict[str, Any]) -> StockLevel:
    quantity = product.get("stock_quantity")
    managed = bool(product.get("manage_stock"))
    return StockLevel(
        sku=str(product["sku"]),
        product_id=int(product["id"]),
        stock_quantity=int(quantity) if managed and quantity is not None else None,
        manage_stock=managed,
    )


class SetStock(Action[SetStockInput, SetStockOutput]):
    name = "set_stock"
    description = "Set absolute stock levels by SKU; writes only the SKUs that differ."
    effect = Effect.WRITE
    idempotency = Idempotency.NATURAL
    Input = SetStockInput
    Output = SetStockOutput

    async def diff(
        self, session: WooCommerceSession, input: SetStockInput
    ) -> tuple[list[StockUpdate], int, list[ItemError]]:
        products = await session.stock_levels([item.sku for item in input.items])
        changes: list[StockUpdate] = []
        errors: list[ItemError] = []
        unchanged = 0
        for item in input.items:
            product = products.get(item.sku)
            if product is None:
                errors.append(
                    ItemError(sku=item.sku, code="sku_not_found", message="no product has this SKU")
                )
                continue
            level = stock_level(product)
            if level.manage_stock and level.stock_quantity == item.quantity:
                unchanged += 1
                continue
            changes.append(
                StockUpdate(
                    sku=item.sku,
                    product_id=level.product_id,
                    old=level.stock_quantity,
                    new=item.quantity,
                )
            )
        return changes, unchanged, errors

    async def plan(
        self, session: WooCommerceSession, input: SetStockInput, call: CallContext
    ) -> list[Change]:
        changes, _, _ = await self.diff(session, input)
        return [Change(subject=c.sku, field="stock", old=c.old, new=c.new) for c in changes]

    async def run(
        self, session: WooCommerceSession, input: SetStockInput, call: CallContext
    ) -> SetStockOutput:
        changes, unchanged, errors = await self.diff(session, input)
        updated: list[StockUpdate] = []
        for group in chunks(changes, BATCH_LIMIT):
            body = {
                "update": [
                    {"id": c.product_id, "manage_stock": True, "stock_quantity": c.new}
                    for c in group
                ]
            }
            answer = await session.send("POST", "products/batch", body)
            results = answer.get("update") if isinstance(answer, dict) else None
            if not isinstance(results, list):
                raise ConnectorError(
                    "WooCommerce answered products/batch without an `update` list",
                    kind=ErrorKind.PERMANENT,
                    maybe_sent=True,
                )
            answered = {str(r.get("id")): r for r in results if isinstance(r, dict) and "id" in r}
            for change in group:
                result = answered.get(str(change.product_id))
                error = result.get("error") if result is not None else None
                if result is not None and not isinstance(error, dict):
                    updated.append(change)
                    continue
                error = error or {
                    "code": "no_result",
                    "message": "the batch answer did not mention this product",
                }
                errors.append(
                    ItemError(
                        sku=change.sku,
                        product_id=change.product_id,
                        code=str(error.get("code", "error")),
                        message=str(error.get("message", "")),
                    )
                )
        return SetStockOutput(updated=updated, unchanged=unchanged, errors=errors)


connector = Connector(
    "woocommerce",
    description="WooCommerce stores over the REST API v3: orders, reviews, stock levels.",
    settings=WooCommerceSettings,
    actions=[
        ListOrders(),
        GetOrder(),
        UpdateOrder(),
        ListReviews(),
        HasReview(),
        GetStock(),
        SetStock(),
    ],
    open=_open,
    close=_close,
    docs_url=DOCS_URL,
)
