"""Helpers shared by the stock-level actions of the store connectors (WooCommerce, Shopify)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar


class HasSku(Protocol):
    @property
    def sku(self) -> str: ...


S = TypeVar("S", bound=HasSku)


def unique_skus(items: list[S]) -> list[S]:
    """The items unchanged, or ValueError naming the first SKU that appears twice."""
    seen: set[str] = set()
    for item in items:
        if item.sku in seen:
            raise ValueError(f"SKU {item.sku!r} appears more than once")
        seen.add(item.sku)
    return items


def chunks(items: Sequence[Any], size: int) -> Iterable[list[Any]]:
    """`items` in consecutive lists of at most `size` (a channel's batch limit)."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
