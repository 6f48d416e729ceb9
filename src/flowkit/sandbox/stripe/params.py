"""Request parameters of the Stripe sandbox: Stripe's nested form encoding, the checks on
single parameters (integers, booleans, strings, required ones, metadata) and `StripeError`, the
error answer they raise."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

JSON = dict[str, Any]
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class StripeError(Exception):
    """An error answer. `executed` errors happened after endpoint execution began, so they are
    saved under the request's idempotency key; validation errors are not."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        executed: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.executed = status, executed
        self.error: JSON = {"type": type, "message": message}
        if code:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.error["param"] = param
        self.error.update(extra)


def decode_form(pairs: Iterable[tuple[str, str]]) -> JSON:
    """Decode Stripe-style form pairs into nested data: `a[b]=1` -> {"a": {"b": "1"}},
    `a[]=1&a[]=2` -> {"a": ["1", "2"]}."""
    root: JSON = {}
    for raw, value in pairs:
        found = _KEY.match(raw)
        if not found:
            raise StripeError(400, f"Invalid parameter name: {raw}", param=raw)
        parts = [found.group(1), *re.findall(r"\[([^\[\]]*)\]", found.group(2))]
        node = root
        for i, part in enumerate(parts):
            if part == "":
                raise StripeError(400, f"Invalid array parameter: {raw}", param=raw)
            if i == len(parts) - 1:
                if isinstance(node.get(part), dict | list):
                    raise StripeError(400, f"Invalid hash or array: {raw}", param=raw)
                node[part] = value
            elif parts[i + 1] == "" and i + 1 == len(parts) - 1:
                items = node.setdefault(part, [])
                if not isinstance(items, list):
                    raise StripeError(400, f"Invalid array: {raw}", param=raw)
                items.append(value)
                break
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise StripeError(400, f"Invalid hash: {raw}", param=raw)
                node = child
    return root


def _hash(method: str, path: str, params: JSON) -> str:
    text = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _int(params: JSON, name: str, *, minimum: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(str(raw))
    except ValueError:
        raise StripeError(400, f"Invalid integer: {raw}", param=name) from None
    if minimum is not None and value < minimum:
        raise StripeError(
            400, f"This value must be greater than or equal to {minimum}.", param=name
        )
    return value


def _bool(params: JSON, name: str) -> bool:
    raw = str(params.get(name, "false")).lower()
    if raw not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {params.get(name)}", param=name)
    return raw == "true"


def _str(params: JSON, name: str) -> str | None:
    raw = params.get(name)
    if raw is not None and not isinstance(raw, str):
        raise StripeError(400, f"Invalid string: {name} must be a string.", param=name)
    return raw or None


def _required(params: JSON, name: str) -> None:
    if params.get(name) in (None, ""):
        raise StripeError(
            400, f"Missing required param: {name}.", code="parameter_missing", param=name
        )


def _metadata(target: JSON, params: JSON) -> None:
    raw = params.get("metadata")
    if raw is None:
        return
    if raw == "":
        target["metadata"] = {}
        return
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash: metadata must be a hash.", param="metadata")
    merged = dict(target.get("metadata") or {})
    for key, value in raw.items():
        if not isinstance(value, str) or len(key) > 40 or len(value) > 500:
            raise StripeError(400, f"Invalid metadata value for key {key!r}.", param="metadata")
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > 50:
        raise StripeError(400, "Metadata can have at most 50 keys.", param="metadata")
    target["metadata"] = merged
