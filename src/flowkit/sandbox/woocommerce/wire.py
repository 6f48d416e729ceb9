"""The WooCommerce sandbox's REST wire pieces: the API base path and limits, the request record
(`Received`), WordPress error bodies (`wp_error`, `item_error`), query parameter parsing
(`list_param`, `int_param`, `InvalidParam`) and WooCommerce timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping

BASE = "/wp-json/wc/v3"
ORDER_STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
)
BATCH_LIMIT = 100
# The parsed JSON object of a request body, for the handlers.
JSON_BODY: web.RequestKey[dict[str, Any]] = web.RequestKey("json_body", dict)
MAX_PER_PAGE = 100


@dataclass
class Received:
    """One request the server saw (after fault injection decided its fate)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


class DropConnection(Exception):
    """Raised by a handler after applying a write, to close the socket without an answer."""


def wp_error(code: str, message: str, status: int, **data: Any) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "data": {"status": status, **data}}, status=status
    )


def wc_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def list_param(query: MultiMapping[str], name: str) -> list[str]:
    """WordPress array params: `name=a,b`, `name[]=a&name[]=b` or repeated `name`."""
    values = [*query.getall(name, []), *query.getall(f"{name}[]", [])]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


class InvalidParam(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name
        self.reason = reason


def item_error(item_id: Any, code: str, message: str, status: int) -> dict[str, Any]:
    return {"id": item_id, "error": {"code": code, "message": message, "data": {"status": status}}}


def compare(stamp: str, bound: datetime, after: bool) -> bool:
    moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return moment > bound if after else moment < bound


def int_param(query: MultiMapping[str], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParam(name, f"{name} is not of type integer.") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} (inclusive) and {high} (inclusive)" if high else f">= {low}"
        raise InvalidParam(name, f"{name} must be {bounds}")
    return value
