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

References followed:
  https://woocommerce.github.io/woocommerce-rest-api-docs/  (auth, pagination, errors, batch)
  https://developer.woocommerce.com/docs/apis/rest-api/v3/product-reviews/
  https://developer.woocommerce.com/docs/apis/rest-api/  (orders, products)
  woocommerce/woocommerce: includes/rest-api/Controllers/Version3/class-wc-rest-controller.php
  (batch limit 100 -> 413 woocommerce_rest_request_entity_too_large; per-item errors)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

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
    reveal,
)
from flowkit.connectors.http_options import TransportSettings, client_options
from flowkit.connectors.stock import chunks, unique_skus

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient

__all__ = ["WooCommerceSession", "WooCommerceSettings", "connector"]

API_PATH = "/wp-json/wc/v3/"
BATCH_LIMIT = 100  # WooCommerce rejects larger batches (woocommerce_rest_batch_items_limit)
MAX_PER_PAGE = 100
MAX_REQUESTS = 10_000  # a list action gives up after this many pages (a broken server)
DOCS_URL = "https://woocommerce.github.io/woocommerce-rest-api-docs/"
AUTH_HINT = (
    "Check the connection's `consumer_key`/`consumer_secret` (WooCommerce > Settings > Advanced "
    "> REST API, with Read/Write permission); if the keys are right, the host may strip the "
    "Authorization header: set `auth: query`."
)
OrderStatus = Literal[
    "any", "pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"
]


class WooCommerceSettings(TransportSettings):
    """Connection settings: the store URL and a REST API key pair."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        pattern=r"^https?://[^\s/]+", description="The store's URL, e.g. https://shop.example.com."
    )
    consumer_key: SecretStr = Field(description="REST API consumer key (ck_...).")
    consumer_secret: SecretStr = Field(description="REST API consumer secret (cs_...).")
    auth: Literal["basic", "query"] = Field(
        "basic", description="Send the keys as HTTP Basic (default) or as query parameters."
    )
    rate_limit: float | None = Field(
        None, gt=0, description="Requests per second to stay under (none: no pacing)."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for each answer.")


# ------------------------------------------------------------------------------- models
class LineItem(Output):
    product_id: int = Field(description="The product's ID (0 when the product was deleted).")
    sku: str = ""
    name: str = ""
    quantity: int = 0


class Order(Output):
    """An order, with the fields recipes need on top of everything WooCommerce returns."""

    id: int
    number: str = Field(description="The order number shown to the customer.")
    status: str
    email: str = Field(description="The billing email.")
    first_name: str = ""
    last_name: str = ""
    customer_name: str = Field("", description="First and last billing name.")
    currency: str = ""
    total: str = "0"
    created_at: str | None = Field(None, description="date_created_gmt, ISO 8601 UTC.")
    modified_at: str | None = Field(None, description="date_modified_gmt, ISO 8601 UTC.")
    completed_at: str | None = Field(None, description="date_completed_gmt, ISO 8601 UTC.")
    line_items: list[LineItem] = Field(default_factory=list)
    product_ids: list[int] = Field(default_factory=list, description="Distinct product IDs.")
    skus: list[str] = Field(default_factory=list, description="Distinct non-empty SKUs.")

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Order:
        billing = raw.get("billing") or {}
        first, last = str(billing.get("first_name") or ""), str(billing.get("last_name") or "")
        lines = [LineItem.model_validate(li) for li in raw.get("line_items") or []]
        return cls.model_validate(
            {
                **raw,
                "number": str(raw.get("number") or raw.get("id")),
                "email": str(billing.get("email") or ""),
                "first_name": first,
                "last_name": last,
                "customer_name": " ".join(n for n in (first, last) if n),
                "created_at": utc(raw.get("date_created_gmt")),
                "modified_at": utc(raw.get("date_modified_gmt")),
                "completed_at": utc(raw.get("date_completed_gmt")),
                "line_items": lines,
                "product_ids": sorted({li.product_id for li in lines if li.product_id}),
                "skus": sorted({li.sku for li in lines if li.sku}),
            }
        )


class Review(Output):
    id: int
    product_id: int
    status: str = ""
    reviewer: str = ""
    reviewer_email: str = ""
    rating: int = 0
    review: str = ""
    created_at: str | None = None


class StockLevel(Output):
    sku: str
    product_id: int
    stock_quantity: int | None = Field(description="None when the product does not track stock.")
    manage_stock: bool = True


class ListOrdersInput(Input):
    status: OrderStatus | list[OrderStatus] = Field(
        "completed", description="Order status(es) to list."
    )
    cursor: str | None = Field(
        None, description="ISO 8601 time: orders modified after it (minus the overlap)."
    )
    per_page: int = Field(MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE, description="Page size.")
    overlap_seconds: int = Field(
        120, ge=0, description="Re-read this much before the cursor (clock skew, late commits)."
    )


class ListOrdersOutput(Output):
    items: list[Order]
    cursor: str | None = Field(description="The newest modified time read (ISO 8601 UTC).")


class GetOrderInput(Input):
    id: int = Field(ge=1)


class UpdateOrderInput(Input):
    id: int = Field(ge=1)
    status: OrderStatus | None = Field(None, description="New status (not `any`).")
    meta: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Order meta data keys to set."
    )
    customer_note: str | None = None

    @field_validator("status")
    @classmethod
    def _real_status(cls, value: str | None) -> str | None:
        if value == "any":
            raise ValueError("`any` is a filter, not a status an order can have")
        return value


class ListReviewsInput(Input):
    product_ids: list[int] = Field(default_factory=list, description="Only these products.")
    reviewer_email: str | None = Field(None, description="Only reviews by this email.")
    status: Literal["approved", "hold", "spam", "trash", "all"] = "approved"


class ListReviewsOutput(Output):
    items: list[Review]


class HasReviewInput(Input):
    email: str = Field(min_length=3, description="The customer's email.")
    product_ids: list[int] = Field(
        default_factory=list, description="Any of these products (empty: any product)."
    )


class HasReviewOutput(Output):
    exists: bool
    count: int


class GetStockInput(Input):
    skus: list[str] = Field(min_length=1, description="SKUs to read.")


class GetStockOutput(Output):
    items: list[StockLevel]
    missing: list[str] = Field(default_factory=list, description="SKUs with no product.")


class StockTarget(Input):
    sku: str = Field(min_length=1)
    quantity: int


class SetStockInput(Input):
    items: list[StockTarget] = Field(description="Absolute stock levels by SKU.")

    @field_validator("items")
    @classmethod
    def _unique(cls, items: list[StockTarget]) -> list[StockTarget]:
        return unique_skus(items)


class StockUpdate(Output):
    sku: str
    product_id: int
    old: int | None
    new: int


class ItemError(Output):
    sku: str
    product_id: int | None = None
    code: str
    message: str


class SetStockOutput(Output):
    updated: list[StockUpdate] = Field(default_factory=list)
    unchanged: int = 0
    errors: list[ItemError] = Field(default_factory=list)


# ------------------------------------------------------------------------------ session
def utc(value: Any) -> str | None:
    """WooCommerce's `*_gmt` times carry no zone: mark them as UTC."""
    if not value:
        return None
    text = str(value)
    return text if text.endswith("Z") or "+" in text[10:] else f"{text}Z"


def parse_time(value: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConnectorError(
            f"{what} {value!r} is not an ISO 8601 time (e.g. 2025-01-31T12:00:00Z)",
            kind=ErrorKind.VALIDATION,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def wp_error_message(response: httpx.Response) -> str:
    """`message (code)` from a WordPress REST error body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("code")
        return f"{body['message']} ({code})" if code else str(body["message"])
    from flowkit.connectors.http_reply import default_error_message

    return default_error_message(response)


@dataclass
class WooCommerceSession:
    client: HttpClient

    async def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self.client.request("GET", path, params=params)
        except ConnectorError as exc:
            raise with_hint(exc) from None

    async def send(self, method: str, path: str, body: Any) -> Any:
        try:
            response = await self.client.request(method, path, json=body)
        except ConnectorError as exc:
            raise with_hint(exc) from None
        return self.client.json(response)

    def page_json(self, response: httpx.Response) -> list[dict[str, Any]]:
        body = self.client.json(response)
        if not isinstance(body, list):
            raise ConnectorError(
                f"unexpected answer from GET {response.request.url.path}: not a JSON list",
                kind=ErrorKind.PERMANENT,
            )
        return [item for item in body if isinstance(item, dict)]

    async def all_pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a numbered-page collection, guided by `X-WP-TotalPages`."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            response = await self.get(path, {**params, "page": page})
            batch = self.page_json(response)
            items.extend(batch)
            pages = total_pages(response)
            if page >= pages or not batch:
                return items
            if page >= MAX_REQUESTS:
                raise ConnectorError(f"GET {path} did not finish within {MAX_REQUESTS} pages")
            page += 1

    async def stock_levels(self, skus: list[str]) -> dict[str, dict[str, Any]]:
        """Products by SKU (chunks of 100 SKUs per request)."""
        found: dict[str, dict[str, Any]] = {}
        wanted = set(skus)
        for group in chunks(sorted(wanted), MAX_PER_PAGE):
            params = {"sku": ",".join(group), "per_page": MAX_PER_PAGE}
            for product in await self.all_pages("products", params):
                sku = str(product.get("sku") or "")
                if sku in wanted and sku not in found:
                    found[sku] = product
        return found


def total_pages(response: httpx.Response) -> int:
    try:
        return int(response.headers.get("X-WP-TotalPages", "1"))
    except ValueError:
        return 1


def with_hint(exc: ConnectorError) -> ConnectorError:
    if exc.kind is ErrorKind.AUTH and exc.hint is None:
        exc.hint = AUTH_HINT
    return exc


async def _open(settings: WooCommerceSettings, runtime: Runtime) -> WooCommerceSession:
    from flowkit.connectors.auth import BasicAuth, FlowkitAuth, QueryParamsAuth
    from flowkit.connectors.http_client import HttpClient, TokenBucket

    key, secret = reveal(settings.consumer_key), reveal(settings.consumer_secret)
    auth: FlowkitAuth = (
        BasicAuth(key, secret)
        if settings.auth == "basic"
        else QueryParamsAuth({"consumer_key": key, "consumer_secret": secret})
    )
    limiter = None
    if settings.rate_limit is not None:
        limiter = TokenBucket(settings.rate_limit, max(1, int(settings.rate_limit)))
    client = HttpClient(
        settings.base_url.rstrip("/") + API_PATH,
        auth=auth,
        headers={"Accept": "application/json"},
        timeout=settings.timeout,
        rate_limiter=limiter,
        error_message=wp_error_message,
        runtime=runtime,
        name="woocommerce",
        **client_options(settings, runtime, "woocommerce"),
    )
    client.add_secret(key)
    return WooCommerceSession(client=client)


async def _close(session: WooCommerceSession) -> None:
    await session.client.aclose()


# ------------------------------------------------------------------------------ actions
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
        return ListOrdersOutput(items=orders, cursor=newest_cursor(orders, input.cursor))


def newest_cursor(orders: list[Order], previous: str | None) -> str | None:
    """The newest modified time read, never older than the previous cursor."""
    times = [
        (parse_time(o.modified_at, "modified_at"), o.modified_at) for o in orders if o.modified_at
    ]
    if not times:
        return previous
    newest, text = max(times)
    if previous and parse_time(previous, "cursor") >= newest:
        return previous
    return text


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
