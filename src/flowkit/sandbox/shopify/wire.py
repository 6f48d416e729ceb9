"""The GraphQL wire pieces of the Shopify sandbox: limits and costs, the request record
(`ShopifyCall`), global ids and timestamps, top-level (`GraphQLError`) and user errors, cursors,
connection shapes and the bodies of injected faults."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

MAX_FIRST = 250
MAX_INPUT = 250
MUTATION_COST = 10
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
OPERATION = re.compile(r"^\s*(query|mutation)\s+([_A-Za-z]\w*)", re.MULTILINE)


@dataclass
class ShopifyCall:
    """One GraphQL request the server saw."""

    operation: str | None
    variables: dict[str, Any]
    status: int = 0
    throttled: bool = False


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphQLError(Exception):
    """A top-level GraphQL error (answered 200 with `errors`, no `data`)."""

    def __init__(self, message: str, code: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


def fault_response(kind: str, retry_after: float) -> web.Response:
    if kind == "throttle":
        message = (
            "Exceeded 2 calls per second for api client. "
            "Reduce request rates to resume uninterrupted service."
        )
        return web.json_response(
            {"errors": message}, status=429, headers={"Retry-After": f"{retry_after:g}"}
        )
    if kind == "unavailable":
        return web.json_response({"errors": "Service Unavailable"}, status=503)
    return web.Response(status=200, text='{"data": {"orders": ', content_type="application/json")


def operation_name(body: dict[str, Any]) -> str | None:
    if isinstance(body.get("operationName"), str):
        return str(body["operationName"])
    match = OPERATION.search(str(body.get("query") or ""))
    return match.group(2) if match else None


def user_error(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message, "code": code}


def encode_cursor(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: Any) -> tuple[str, str]:
    try:
        first, second = json.loads(base64.urlsafe_b64decode(str(cursor).encode()))
    except (ValueError, TypeError):
        raise GraphQLError(
            f"Invalid cursor for current pagination sort: {cursor!r}", "BAD_REQUEST"
        ) from None
    return str(first), str(second)


def connection_shape(
    query: str, nodes: list[dict[str, Any]], cursors: list[str], *, has_next: bool
) -> dict[str, Any]:
    """A connection with the fields the query selects: `nodes`, `edges`, or both."""
    shape: dict[str, Any] = {}
    if re.search(r"\bnodes\b", query) or "edges" not in query:
        shape["nodes"] = nodes
    if re.search(r"\bedges\b", query):
        shape["edges"] = [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)]
    shape["pageInfo"] = {
        "hasNextPage": has_next,
        "hasPreviousPage": False,
        "endCursor": cursors[-1] if cursors else None,
        "startCursor": cursors[0] if cursors else None,
    }
    return shape
