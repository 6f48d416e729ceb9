"""What the `quickbooks` connector's requests and answers carry, without the HTTP layer:
`requestid` values, query-language literals, the entity in an answer. The connector's actions
use these with its models; `flowkit validate` imports them without httpx."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from flowkit.connectors.base import ConnectorError, ErrorKind

MAX_REQUEST_ID = 50  # QuickBooks accepts requestid values of up to 50 characters


def request_id(key: str, variant: str = "") -> str:
    """A requestid for `key` (plus a variant for follow-up writes of one step), <= 50 chars."""
    raw = f"{key}.{variant}" if variant else key
    if len(raw) <= MAX_REQUEST_ID and re.fullmatch(r"[A-Za-z0-9._:-]+", raw):
        return raw
    return "fk-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def quote(value: str) -> str:
    """A string literal for the QuickBooks query language (backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def entity_of(data: dict[str, Any], entity: str, path: str) -> dict[str, Any]:
    found = data.get(entity)
    if not isinstance(found, dict):
        raise ConnectorError(
            f"QuickBooks answered {path} without {entity}",
            kind=ErrorKind.PERMANENT,
            maybe_sent=True,
        )
    return found
