"""Shopify's search syntax in `query:` arguments, the subset the sandbox filters orders
(`fulfillment_status`, `updated_at`, ...) and product variants (`sku:A OR sku:B`) by."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flowkit.sandbox.times import parse_iso

FULFILLMENT_FILTERS = {
    "shipped": {"FULFILLED"},
    "fulfilled": {"FULFILLED"},
    "partial": {"PARTIALLY_FULFILLED"},
    "unshipped": {"UNFULFILLED"},
    "unfulfilled": {"UNFULFILLED", "PARTIALLY_FULFILLED"},
    "on_hold": {"ON_HOLD"},
    "scheduled": {"SCHEDULED"},
    "any": None,
}
TERM = re.compile(r"""(\w+):(>=|<=|>|<)?('[^']*'|"[^"]*"|\S+)""")
TIME_FIELDS = {"updated_at": "updatedAt", "created_at": "createdAt", "processed_at": "processedAt"}


def matches_order(order: dict[str, Any], search: str) -> bool:
    """Shopify search syntax subset: space-separated `field:[op]value` terms, all must hold."""
    return all(term_holds(order, f, op, raw.strip("'\"")) for f, op, raw in TERM.findall(search))


def term_holds(order: dict[str, Any], field: str, op: str, value: str) -> bool:
    if field == "fulfillment_status":
        allowed = FULFILLMENT_FILTERS.get(value.lower(), set())
        return allowed is None or order["displayFulfillmentStatus"] in allowed
    if field in TIME_FIELDS:
        bound, stamp = parse_iso(value), parse_iso(order[TIME_FIELDS[field]])
        return bound is not None and stamp is not None and compare_times(stamp, op or "=", bound)
    if field == "email":
        return bool(order["email"].lower() == value.lower())
    if field == "tag":
        return value in order["tags"]
    return True  # Shopify ignores unknown search fields


def compare_times(stamp: datetime, op: str, bound: datetime) -> bool:
    return {
        ">": stamp > bound,
        ">=": stamp >= bound,
        "<": stamp < bound,
        "<=": stamp <= bound,
    }.get(op, stamp == bound)


def parse_sku_query(search: str) -> set[str] | None:
    """`sku:A OR sku:B` → {"A", "B"}; an empty query matches every variant (None)."""
    if not search.strip():
        return None
    return {value.strip("'\"") for field, _op, value in TERM.findall(search) if field == "sku"}
