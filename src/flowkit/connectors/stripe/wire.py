"""What the `stripe` connector's requests and answers carry, without the HTTP layer: Stripe's
form encoding, its error messages and classification, API objects parsed into the models.
`httpx` appears in annotations only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from flowkit.connectors.base import ErrorKind
from flowkit.errors import ConnectorError

if TYPE_CHECKING:
    import httpx


_EXPANDABLE = ("latest_charge", "charge", "payment_intent", "balance_transaction", "invoice")


def _take_customer(raw: Any) -> Any:
    """Normalise expandable fields: an expanded `customer` goes to `customer_object` (its id
    stays in `customer`); other expanded references are reduced to their id."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    customer = out.get("customer")
    if isinstance(customer, dict):
        out["customer"] = customer.get("id")
        out["customer_object"] = customer
    for name in _EXPANDABLE:
        if isinstance(out.get(name), dict):
            out[name] = out[name].get("id")
    return out


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], raw: Any, where: str) -> M:
    """Validate an API object; an unexpected shape is a PERMANENT error, not a crash."""
    try:
        return model.model_validate(_take_customer(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ConnectorError(
            f"unexpected {model.__name__} from {where}: {loc}: {first['msg']}",
            kind=ErrorKind.PERMANENT,
        ) from None


# wire helpers --------------------------------------------------------------------------------


def form_pairs(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: `a[b]=1` for nested mappings, `a[]=x` for lists of scalars,
    `a[0][b]=1` for lists of mappings, booleans as `true`/`false`, None as "" (unset)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            if not value:
                pairs.append((name, ""))
            pairs.extend(form_pairs(value, name))
        elif isinstance(value, list | tuple):
            for index, element in enumerate(value):
                if isinstance(element, Mapping):
                    pairs.extend(form_pairs(element, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[]", _scalar(element)))
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stripe_message(response: httpx.Response) -> str:
    """Stripe's own error message, with its code and decline code."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return " ".join(response.text.split()) or response.reason_phrase
    message = str(error.get("message") or error.get("type") or "error")
    codes = [str(c) for c in (error.get("code"), error.get("decline_code")) if c]
    if codes:
        message += f" [{', '.join(dict.fromkeys(codes))}]"
    if error.get("type") == "idempotency_error":
        message = "Idempotency-Key reused with different parameters: " + message
    return message


def stripe_kind(response: httpx.Response, kind: ErrorKind) -> ErrorKind:
    """Stripe's refinements of the status classification."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    etype = error.get("type") if isinstance(error, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if etype == "idempotency_error":
        return ErrorKind.CONFLICT
    if code == "idempotency_key_in_use" or response.status_code == 424:
        return ErrorKind.TRANSIENT  # the first request is still running / a dependency failed
    if etype == "card_error" or response.status_code == 402:
        return ErrorKind.PERMANENT  # a decline: a valid request that will not succeed
    should_retry = response.headers.get("Stripe-Should-Retry")
    if should_retry == "false" and kind.retryable:
        return ErrorKind.PERMANENT
    if should_retry == "true" and not kind.retryable:
        return ErrorKind.TRANSIENT
    return kind


def _segment(value: str) -> str:
    """An object id as one path segment (ids never contain `/`; refuse rather than escape)."""
    if "/" in value or "?" in value or "#" in value:
        raise ConnectorError(f"invalid Stripe id {value!r}", kind=ErrorKind.VALIDATION)
    return value
