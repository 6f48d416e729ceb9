"""What the `shopify` connector sends and reads, without the HTTP layer: the GraphQL
documents, order and location IDs (numeric or GID), ISO 8601 times, Shopify search syntax."""

from __future__ import annotations

import re

ORDER_FIELDS = """
      id name email createdAt updatedAt processedAt closedAt cancelledAt
      displayFulfillmentStatus displayFinancialStatus tags
      customer { id firstName lastName email }
      totalPriceSet { shopMoney { amount currencyCode } }
      fulfillments(first: 10) { createdAt status }
      lineItems(first: $lineItems) { nodes { id sku name quantity variant { id } product { id } } }
"""
LIST_ORDERS = (
    "query ListOrders($first: Int!, $after: String, $query: String, $lineItems: Int!) {\n"
    "  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {\n"
    "    nodes {" + ORDER_FIELDS + "    }\n"
    "    pageInfo { hasNextPage endCursor }\n  }\n}"
)
GET_ORDER = (
    "query GetOrder($id: ID!, $lineItems: Int!) {\n  order(id: $id) {" + ORDER_FIELDS + "  }\n}"
)
VARIANTS_BY_SKU = """query VariantsBySku(
  $first: Int!, $after: String, $query: String, $locationId: ID!
) {
  productVariants(first: $first, after: $after, query: $query) {
    nodes {
      id sku
      product { id title }
      inventoryItem {
        id
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
SET_INVENTORY = """mutation SetInventory($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange } }
    userErrors { field message code }
  }
}"""
LIST_LOCATIONS = """query ListLocations($first: Int!) {
  locations(first: $first) { nodes { id name isActive } pageInfo { hasNextPage endCursor } }
}"""
ADD_TAGS = """mutation AddTags($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { node { id } userErrors { field message } }
}"""


# ------------------------------------------------------------------------------ helpers
def as_gid(kind: str, value: str) -> str:
    text = str(value).strip()
    if text.isdigit():
        return f"gid://shopify/{kind}/{text}"
    if not text.startswith(f"gid://shopify/{kind}/"):
        raise ValueError(f"{text!r} is not a {kind} ID (a number or gid://shopify/{kind}/...)")
    return text


def legacy_id(gid: str) -> int:
    tail = gid.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def search_value(value: str) -> str:
    """A value for Shopify search syntax: quoted when it holds anything but safe characters."""
    if re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
