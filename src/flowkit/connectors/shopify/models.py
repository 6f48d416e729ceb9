"""Settings, inputs and outputs of the `shopify` connector (pydantic models). Importing them
needs no HTTP layer: `flowkit validate` checks recipes against them.
Orders follow https://shopify.dev/docs/api/admin-graphql/2025-01/queries/orders"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, SecretStr, field_validator

from flowkit.connectors.base import Input, Output
from flowkit.connectors.http_options import TransportSettings
from flowkit.connectors.shopify.wire import as_gid, legacy_id
from flowkit.connectors.stock import unique_skus

MAX_FIRST = 250


class ShopifySettings(TransportSettings):
    """Connection settings: the shop, an Admin API access token, the API version."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    shop_url: str = Field(
        validation_alias=AliasChoices("shop_url", "base_url"),
        description="The shop, e.g. https://my-shop.myshopify.com (alias: base_url).",
    )
    access_token: SecretStr = Field(description="Admin API access token (shpat_...).")
    api_version: str = Field(
        "2025-01", pattern=r"^(\d{4}-\d{2}|unstable)$", description="Admin API version."
    )
    location_id: str | None = Field(
        None, description="Default location for inventory (gid://shopify/Location/...)."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for each answer.")

    @field_validator("shop_url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip().rstrip("/")
        if not re.match(r"^https?://", text):
            text = "https://" + text
        if not re.match(r"^https?://[^\s/]+$", text):
            raise ValueError("must be the shop's address, e.g. https://my-shop.myshopify.com")
        return text

    @field_validator("location_id")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        return None if value is None else as_gid("Location", value)


# ------------------------------------------------------------------------------- models
class ShopifyLineItem(Output):
    sku: str = ""
    name: str = ""
    quantity: int = 0
    product_id: str | None = None
    variant_id: str | None = None


class ShopifyOrder(Output):
    """An order, with the fields recipes need (Shopify's own fields are kept too)."""

    id: str = Field(description="The order's GID (gid://shopify/Order/...).")
    legacy_id: int = Field(description="The numeric ID shown in the admin URL.")
    number: str = Field(description="The order name shown to the customer, e.g. #1001.")
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    customer_name: str = ""
    status: str = Field(description="displayFulfillmentStatus, e.g. FULFILLED.")
    financial_status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    fulfilled_at: str | None = Field(None, description="When the last fulfillment was created.")
    cancelled_at: str | None = None
    tags: list[str] = Field(default_factory=list)
    total: str = "0"
    currency: str = ""
    line_items: list[ShopifyLineItem] = Field(default_factory=list)
    product_ids: list[str] = Field(default_factory=list)
    skus: list[str] = Field(default_factory=list)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> ShopifyOrder:
        customer = raw.get("customer") or {}
        first, last = str(customer.get("firstName") or ""), str(customer.get("lastName") or "")
        lines = [
            ShopifyLineItem(
                sku=str(li.get("sku") or ""),
                name=str(li.get("name") or ""),
                quantity=int(li.get("quantity") or 0),
                product_id=(li.get("product") or {}).get("id"),
                variant_id=(li.get("variant") or {}).get("id"),
            )
            for li in ((raw.get("lineItems") or {}).get("nodes") or [])
        ]
        money = (raw.get("totalPriceSet") or {}).get("shopMoney") or {}
        fulfilled = [
            f.get("createdAt") for f in raw.get("fulfillments") or [] if f.get("createdAt")
        ]
        kept = {k: v for k, v in raw.items() if k not in ("lineItems", "customer")}
        return cls.model_validate(
            {
                **kept,
                "legacy_id": legacy_id(str(raw["id"])),
                "number": str(raw.get("name") or ""),
                "email": str(raw.get("email") or customer.get("email") or ""),
                "first_name": first,
                "last_name": last,
                "customer_name": " ".join(n for n in (first, last) if n),
                "status": str(raw.get("displayFulfillmentStatus") or ""),
                "financial_status": raw.get("displayFinancialStatus"),
                "created_at": raw.get("createdAt"),
                "updated_at": raw.get("updatedAt"),
                "fulfilled_at": max(fulfilled) if fulfilled else None,
                "cancelled_at": raw.get("cancelledAt"),
                "total": str(money.get("amount") or "0"),
                "currency": str(money.get("currencyCode") or ""),
                "line_items": lines,
                "product_ids": sorted({li.product_id for li in lines if li.product_id}),
                "skus": sorted({li.sku for li in lines if li.sku}),
            }
        )


class ListOrdersInput(Input):
    fulfillment_status: Literal["shipped", "partial", "unshipped", "unfulfilled", "any"] = Field(
        "shipped", description="Shopify's `fulfillment_status` search filter."
    )
    cursor: str | None = Field(None, description="ISO 8601 time: orders updated after it.")
    per_page: int = Field(25, ge=1, le=MAX_FIRST, description="Orders per query (cost-capped).")
    line_items: int = Field(20, ge=1, le=MAX_FIRST, description="Line items read per order.")
    overlap_seconds: int = Field(120, ge=0, description="Re-read this much before the cursor.")


class ListOrdersOutput(Output):
    items: list[ShopifyOrder]
    cursor: str | None


class GetOrderInput(Input):
    id: str = Field(min_length=1, description="Order GID or numeric ID.")
    line_items: int = Field(50, ge=1, le=MAX_FIRST)


class InventoryLevel(Output):
    sku: str
    variant_id: str
    inventory_item_id: str
    available: int | None = Field(description="None when the item is not stocked there.")


class GetInventoryInput(Input):
    skus: list[str] = Field(min_length=1)
    location_id: str | None = Field(None, description="Default: the connection's location.")


class GetInventoryOutput(Output):
    location_id: str
    items: list[InventoryLevel]
    missing: list[str] = Field(default_factory=list)


class InventoryTarget(Input):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=-1_000_000_000, le=1_000_000_000)


class SetInventoryInput(Input):
    items: list[InventoryTarget]
    location_id: str | None = Field(None, description="Default: the connection's location.")
    reason: str = Field("correction", description="Shopify's adjustment reason.")
    compare: bool = Field(
        True, description="Compare-and-set against the level just read (compareQuantity)."
    )

    @field_validator("items")
    @classmethod
    def _unique(cls, items: list[InventoryTarget]) -> list[InventoryTarget]:
        return unique_skus(items)


class InventoryUpdate(Output):
    sku: str
    inventory_item_id: str
    old: int | None
    new: int


class ItemError(Output):
    sku: str
    code: str
    message: str


class SetInventoryOutput(Output):
    location_id: str
    updated: list[InventoryUpdate] = Field(default_factory=list)
    unchanged: int = 0
    errors: list[ItemError] = Field(default_factory=list)


class AddTagsInput(Input):
    id: str = Field(min_length=1, description="Order GID or numeric ID.")
    tags: list[str] = Field(min_length=1)


class AddTagsOutput(Output):
    id: str
