"""Times shared by the sandbox's store stand-ins (WooCommerce, Shopify): when their seeded
demo data begins, and the lenient ISO 8601 reading of the times in their query parameters."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["BASE_TIME", "parse_iso"]

BASE_TIME = datetime(2025, 1, 1, 9, 0, 0, tzinfo=UTC)
"""The creation time of the first seeded record; the next ones follow an hour apart."""


def parse_iso(raw: str) -> datetime | None:
    """`raw` as an aware datetime (`Z` accepted, no zone means UTC), None when it is not ISO
    8601: the stand-ins then answer as their APIs do to a malformed time."""
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
