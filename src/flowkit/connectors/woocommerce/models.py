"""Settings, inputs and outputs of the `woocommerce` connector (pydantic models).

Output models keep every field WooCommerce returns and add the ones recipes use most
(`Order.from_api` flattens the billing name and email, lists distinct product IDs and SKUs).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from flowkit.connectors.base import Input, Output
from flowkit.connectors.http_options import TransportSettings
from flowkit.connectors.stock import unique_skus
from flowkit.connectors.woocommerce.wire import MAX_PER_PAGE, utc

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
