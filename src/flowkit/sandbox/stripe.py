"""A contract-faithful, in-memory stand-in for the Stripe API (charges, payment intents,
customers, refunds) for `flowkit sandbox` and the tests.

References followed (docs.stripe.com):
* Authentication, secret key as HTTP Basic user or Bearer token: https://docs.stripe.com/api/authentication
* Form-encoded bodies with nested keys (`metadata[k]=v`, `expand[]=x`): https://docs.stripe.com/api
* Idempotent requests: https://docs.stripe.com/api/idempotent_requests and
  https://docs.stripe.com/idempotency — the status and body of the first request whose endpoint
  execution began are saved per key and replayed (also errors, also 500s); a repeat with other
  parameters or another endpoint is an `idempotency_error` (400); a repeat while the first is
  still executing is a 409; parameter-validation failures are not saved; keys are at most 255
  characters and are pruned after 24 hours; GET requests ignore the header.
* Pagination, newest first, `limit` 1-100 (default 10), `starting_after` / `ending_before`
  mutually exclusive: https://docs.stripe.com/api/pagination
* Errors, `{"error": {"type", "code", "message", "param"}}`, 402 for card errors, 409 for
  idempotency conflicts: https://docs.stripe.com/api/errors
* Charges (object, create, retrieve, update, list with `created[gt|gte|lt|lte]`, `customer`,
  `payment_intent`): https://docs.stripe.com/api/charges
* Customers: https://docs.stripe.com/api/customers ; PaymentIntents (create with `confirm`,
  confirm, update, list): https://docs.stripe.com/api/payment_intents ; Refunds:
  https://docs.stripe.com/api/refunds
* Metadata merges on update; an empty value unsets a key, `metadata=` clears all:
  https://docs.stripe.com/metadata
* Expanding responses (`expand[]=customer`, `expand[]=data.customer`): https://docs.stripe.com/expand

Test cards (https://docs.stripe.com/testing): `pm_card_visa`, `tok_visa`, `pm_card_mastercard`
succeed; `pm_card_chargeDeclined`, `tok_chargeDeclined` and
`pm_card_chargeDeclinedInsufficientFunds` decline with 402.

Decisions where the reference is silent: unknown parameters are rejected like Stripe does
("Received unknown parameter"); the fault knobs (`StripeFaults`, also `POST /_sandbox/faults`)
act before anything is processed except `drop_after_apply` (the write is applied and its
idempotent result saved, then the connection is closed without an answer) and `malformed`
(processed normally, body truncated). The drop knobs only affect POST requests, and
`drop_after_apply` only one that applied a write.

Control endpoints (no authentication, not part of Stripe): `GET|POST|DELETE /_sandbox/faults`
(read, change or reset the knobs), `GET /_sandbox/ledger` (applied writes), `GET
/_sandbox/state` (counts).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
import json
import random
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

__all__ = [
    "DEFAULT_API_KEY",
    "Effect",
    "StripeError",
    "StripeFaults",
    "StripeSandbox",
    "decode_form",
]

DEFAULT_API_KEY = "sk_test_flowkit_sandbox"
JSON = dict[str, Any]
IDEMPOTENCY_TTL = 24 * 3600
_LIST = {"limit", "starting_after", "ending_before", "created", "expand"}
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_CARDS = {
    "pm_card_visa": ("visa", "4242", None),
    "tok_visa": ("visa", "4242", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "tok_mastercard": ("mastercard", "4444", None),
    "pm_card_chargeDeclined": ("visa", "0002", "generic_decline"),
    "tok_chargeDeclined": ("visa", "0002", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds"),
}
_FIRST = ["Ada", "Ben", "Carla", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "June"]
_LAST = ["Lovelace", "Okafor", "Marsh", "Patel", "Yilmaz", "Adeyemi", "Berg", "Sato", "Novak"]
_GOODS = ["Ceramic mug", "Linen apron", "Oak board", "Tea sampler", "Wool throw", "Candle set"]
_CITIES = [("Lisbon", "PT", "1100-148"), ("Berlin", "DE", "10115"), ("Austin", "US", "78701")]


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


@dataclass(frozen=True)
class Effect:
    """One write that was actually applied (for exactly-once assertions)."""

    method: str
    path: str
    idempotency_key: str | None
    params_hash: str
    time: float
    object_id: str


@dataclass
class StripeFaults:
    """Failure knobs. Counted knobs apply to the next matching requests; `match` (e.g.
    "POST /v1/charges") restricts them to requests whose "METHOD /path" starts with it."""

    latency_ms: int = 0
    fail_next: int = 0
    fail_status: int = 503
    retry_after: int | None = 1
    malformed_next: int = 0
    drop_after_apply_next: int = 0
    drop_before_apply_next: int = 0
    match: str | None = None

    def update(self, changes: JSON) -> None:
        """Apply a JSON object of knob values (the `/_sandbox/faults` body)."""
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown fault knob {name!r}")
            if name == "match":
                self.match = None if value is None else str(value)
            elif name == "retry_after":
                self.retry_after = None if value is None else int(value)
            else:
                setattr(self, name, int(value))


@dataclass
class _Saved:
    method: str
    path: str
    params_hash: str
    at: float
    status: int = 0
    body: JSON = field(default_factory=dict)
    request_id: str = ""
    done: bool = False


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


class StripeSandbox:
    """One Stripe test-mode account: the aiohttp `app`, its in-memory objects, an effect
    `ledger` and the `faults` knobs. Thread-safe enough to be driven from a test thread while
    the app is served by `flowkit.sandbox.server.serve_in_thread`."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        clock: Callable[[], float] = time.time,
        rng_seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.clock = clock
        self.customers: dict[str, JSON] = {}
        self.charges: dict[str, JSON] = {}
        self.payment_intents: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        self.ledger: list[Effect] = []
        self.faults = StripeFaults()
        self._rng = random.Random(rng_seed)
        self._order: dict[str, tuple[int, int]] = {}
        self._seq = 0
        self._saved: dict[tuple[str, str], _Saved] = {}
        self._lock = threading.RLock()
        self.app = self._build_app()

    # ------------------------------------------------------------------ in-process helpers
    def seed(self, n: int = 3) -> list[JSON]:
        """Add demo customers and `n` succeeded charges (oldest first, an hour apart, ending
        now); deterministic for a given `rng_seed`. Returns the charges added."""
        now = int(self.clock())
        customers = []
        for i in range(max(1, (n + 1) // 2)):
            first, last = _FIRST[i % len(_FIRST)], _LAST[i % len(_LAST)]
            city, country, postal = _CITIES[i % len(_CITIES)]
            customers.append(
                self.add_customer(
                    email=f"{first.lower()}.{last.lower()}{i}@example.com",
                    name=f"{first} {last}",
                    address={
                        "city": city,
                        "country": country,
                        "postal_code": postal,
                        "line1": f"{i + 1} Market Street",
                        "line2": None,
                        "state": None,
                    },
                    created=now - (n + 1) * 3600,
                )
            )
        added = []
        for i in range(n):
            customer = customers[i % len(customers)]
            quantity = self._rng.randint(1, 3)
            product = _GOODS[self._rng.randrange(len(_GOODS))]
            added.append(
                self.add_charge(
                    amount=quantity * self._rng.choice([1200, 1850, 2400, 3200, 4500]),
                    customer=customer["id"],
                    description=f"Order #{1001 + i}: {quantity} x {product}",
                    created=now - (n - 1 - i) * 3600,
                )
            )
        return added

    def add_customer(self, *, created: int | None = None, **fields: Any) -> JSON:
        """Create a customer directly (no ledger entry)."""
        with self._lock:
            return self._new_customer(fields, created)

    def add_charge(
        self,
        amount: int,
        *,
        currency: str = "usd",
        customer: str | None = None,
        description: str | None = None,
        receipt_email: str | None = None,
        billing_details: JSON | None = None,
        metadata: dict[str, str] | None = None,
        created: int | None = None,
        source: str = "pm_card_visa",
    ) -> JSON:
        """Create a charge directly (no ledger entry); declining sources give a failed one."""
        with self._lock:
            return self._new_charge(
                amount=amount, currency=currency, customer=customer, description=description,
                receipt_email=receipt_email, billing_details=billing_details,
                metadata=metadata or {}, created=created, source=source, payment_intent=None,
            )  # fmt: skip

    def marked_charges(self) -> list[JSON]:
        """Charges that were updated through `POST /v1/charges/{id}` (e.g. marked invoiced)."""
        ids = dict.fromkeys(
            e.object_id for e in self.ledger if re.fullmatch(r"/v1/charges/[^/]+", e.path)
        )
        return [self.charges[i] for i in ids if i in self.charges]

    def effects(self, path: str | None = None) -> list[Effect]:
        """Applied writes, optionally only those on `path` (exact or prefix ending in '/')."""
        return [
            e
            for e in self.ledger
            if path is None or e.path == path or (path.endswith("/") and e.path.startswith(path))
        ]

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        retry_after: int | None = 1,
        match: str | None = None,
    ) -> None:
        """The next `count` requests (matching `match`, e.g. "POST /v1/charges"; it applies to
        every counted knob) answer `status` (429 / 5xx) without being processed."""
        with self._lock:
            self.faults.fail_next, self.faults.fail_status = count, status
            self.faults.retry_after, self.faults.match = retry_after, match

    def summary(self) -> JSON:
        """Counts for the sandbox status page."""
        with self._lock:
            return {
                "customers": len(self.customers),
                "charges": len(self.charges),
                "payment_intents": len(self.payment_intents),
                "refunds": len(self.refunds),
                "charges_marked": len(self.marked_charges()),
                "writes_applied": len(self.ledger),
            }

    # ------------------------------------------------------------------ objects
    def _id(self, prefix: str) -> str:
        alphabet = string.ascii_letters + string.digits
        return prefix + "".join(self._rng.choice(alphabet) for _ in range(24))

    def _register(self, obj: JSON) -> JSON:
        self._seq += 1
        self._order[obj["id"]] = (int(obj["created"]), self._seq)
        return obj

    def _new_customer(self, params: JSON, created: int | None) -> JSON:
        customer: JSON = {
            "id": self._id("cus_"), "object": "customer", "address": params.get("address"),
            "balance": 0, "created": int(self.clock()) if created is None else created,
            "currency": None, "default_source": None, "delinquent": False,
            "description": params.get("description"), "email": params.get("email"),
            "invoice_prefix": self._id("")[:8].upper(), "livemode": False, "metadata": {},
            "name": params.get("name"), "phone": params.get("phone"),
            "preferred_locales": [], "shipping": None, "tax_exempt": "none",
        }  # fmt: skip
        _metadata(customer, params)
        self.customers[customer["id"]] = customer
        return self._register(customer)

    def _customer(self, cid: str | None, param: str = "customer") -> JSON | None:
        if cid is None:
            return None
        if cid not in self.customers:
            raise StripeError(404, f"No such customer: '{cid}'", code="resource_missing",
                              param=param, executed=True)  # fmt: skip
        return self.customers[cid]

    def _new_charge(self, **p: Any) -> JSON:
        customer = self._customer(p["customer"])
        brand, last4, decline = _CARDS.get(p["source"], ("visa", "4242", None))
        billing = p.get("billing_details") or {
            "address": (customer or {}).get("address")
            or dict.fromkeys(["city", "country", "line1", "line2", "postal_code", "state"]),
            "email": (customer or {}).get("email") or p.get("receipt_email"),
            "name": (customer or {}).get("name"),
            "phone": (customer or {}).get("phone"),
        }
        cid = self._id("ch_")
        failed = decline is not None
        charge = {
            "id": cid, "object": "charge", "amount": p["amount"],
            "amount_captured": 0 if failed else p["amount"], "amount_refunded": 0,
            "balance_transaction": None if failed else self._id("txn_"),
            "billing_details": billing, "captured": not failed,
            "created": int(self.clock()) if p.get("created") is None else p["created"],
            "currency": p["currency"], "customer": p["customer"],
            "description": p.get("description"), "disputed": False,
            "failure_code": "card_declined" if failed else None,
            "failure_message": "Your card was declined." if failed else None,
            "livemode": False, "metadata": dict(p.get("metadata") or {}),
            "outcome": {"network_status": "declined_by_network" if failed
                        else "approved_by_network", "reason": decline,
                        "risk_level": "normal", "seller_message": "The bank did not return "
                        "any further details." if failed else "Payment complete.",
                        "type": "issuer_declined" if failed else "authorized"},
            "paid": not failed, "payment_intent": p.get("payment_intent"),
            "payment_method": self._id("pm_"),
            "payment_method_details": {"type": "card", "card": {
                "brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2034,
                "country": "US", "funding": "credit"}},
            "receipt_email": p.get("receipt_email") or (customer or {}).get("email"),
            "receipt_url": f"https://pay.stripe.com/receipts/sandbox/{cid}",
            "refunded": False, "shipping": p.get("shipping"),
            "statement_descriptor": p.get("statement_descriptor"),
            "status": "failed" if failed else "succeeded",
            "transfer_group": p.get("transfer_group"),
        }  # fmt: skip
        self.charges[cid] = charge
        return self._register(charge)

    def _decline(self, charge: JSON, **extra: Any) -> StripeError:
        decline = charge["outcome"]["reason"]
        message = (
            "Your card has insufficient funds."
            if decline == "insufficient_funds"
            else "Your card was declined."
        )
        return StripeError(402, message, type="card_error", code="card_declined",
                           decline_code=decline, charge=charge["id"], executed=True,
                           **extra)  # fmt: skip

    # ------------------------------------------------------------------ endpoints
    def _charge_create(self, p: JSON, _ids: dict[str, str]) -> JSON:
        _required(p, "amount")
        _required(p, "currency")
        amount = _int(p, "amount", minimum=1) or 0
        if amount < 50:
            raise StripeError(400, "Amount must be at least $0.50 usd", code="amount_too_small",
                              param="amount")  # fmt: skip
        source = _str(p, "source")
        if source is None and not p.get("customer"):
            raise StripeError(400, "Must provide source or customer.", code="parameter_missing")
        if source is not None and source not in _CARDS:
            raise StripeError(400, f"No such token: '{source}'", code="resource_missing",
                              param="source")  # fmt: skip
        if p.get("metadata") not in (None, "") and not isinstance(p["metadata"], dict):
            raise StripeError(400, "Invalid hash: metadata must be a hash.", param="metadata")
        charge = self._new_charge(
            amount=amount, currency=str(p["currency"]).lower(), customer=_str(p, "customer"),
            description=_str(p, "description"), receipt_email=_str(p, "receipt_email"),
            source=source or "pm_card_visa", shipping=p.get("shipping"),
            statement_descriptor=_str(p, "statement_descriptor"),
            transfer_group=_str(p, "transfer_group"), payment_intent=None,
        )  # fmt: skip
        _metadata(charge, p)
        if charge["status"] == "failed":
            raise self._decline(charge)
        return charge

    def _charge_update(self, p: JSON, ids: dict[str, str]) -> JSON:
        charge = self._get(self.charges, ids["id"], "charge", executed=True)
        for name in ("description", "receipt_email", "transfer_group"):
            if name in p:
                charge[name] = _str(p, name)
        if "shipping" in p:
            charge["shipping"] = p["shipping"] or None
        _metadata(charge, p)
        return charge

    def _customer_create(self, p: JSON, _ids: dict[str, str]) -> JSON:
        return self._new_customer(p, None)

    def _customer_update(self, p: JSON, ids: dict[str, str]) -> JSON:
        customer = self._get(self.customers, ids["id"], "customer", executed=True)
        for name in ("email", "name", "description", "phone", "address"):
            if name in p:
                customer[name] = p[name] or None
        _metadata(customer, p)
        return customer

    def _pi_create(self, p: JSON, _ids: dict[str, str]) -> JSON:
        _required(p, "amount")
        _required(p, "currency")
        amount = _int(p, "amount", minimum=50) or 0
        confirm = _bool(p, "confirm")
        if p.get("capture_method", "automatic") not in ("automatic", "automatic_async"):
            raise StripeError(400, "Only automatic capture is supported by the flowkit sandbox.",
                              param="capture_method")  # fmt: skip
        pm = _str(p, "payment_method")
        if pm is not None and pm not in _CARDS:
            raise StripeError(400, f"No such PaymentMethod: '{pm}'", code="resource_missing",
                              param="payment_method")  # fmt: skip
        self._customer(_str(p, "customer"))
        types = p.get("payment_method_types") or ["card"]
        pid = self._id("pi_")
        intent = {
            "id": pid, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "capture_method": p.get("capture_method", "automatic"),
            "client_secret": f"{pid}_secret_{self._id('')[:24]}",
            "confirmation_method": "automatic", "created": int(self.clock()),
            "currency": str(p["currency"]).lower(), "customer": _str(p, "customer"),
            "description": _str(p, "description"), "last_payment_error": None,
            "latest_charge": None, "livemode": False, "metadata": {}, "payment_method": pm,
            "payment_method_types": list(types.values()) if isinstance(types, dict) else types,
            "receipt_email": _str(p, "receipt_email"),
            "status": "requires_confirmation" if pm else "requires_payment_method",
        }  # fmt: skip
        _metadata(intent, p)
        self.payment_intents[pid] = intent
        self._register(intent)
        if confirm:
            self._confirm(intent, pm)
        return intent

    def _pi_confirm(self, p: JSON, ids: dict[str, str]) -> JSON:
        intent = self._get(self.payment_intents, ids["id"], "payment_intent", executed=True)
        pm = _str(p, "payment_method")
        if pm is not None and pm not in _CARDS:
            raise StripeError(400, f"No such PaymentMethod: '{pm}'", code="resource_missing",
                              param="payment_method")  # fmt: skip
        self._confirm(intent, pm or intent["payment_method"])
        return intent

    def _confirm(self, intent: JSON, pm: str | None) -> None:
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise StripeError(400, "This PaymentIntent's status is "
                              f"{intent['status']}, so it cannot be confirmed.",
                              code="payment_intent_unexpected_state",
                              executed=True)  # fmt: skip
        if pm is None:
            raise StripeError(400, "You cannot confirm this PaymentIntent because it's missing "
                              "a payment method.", code="payment_intent_unexpected_state",
                              executed=True)  # fmt: skip
        intent["payment_method"] = pm
        charge = self._new_charge(
            amount=intent["amount"], currency=intent["currency"], customer=intent["customer"],
            description=intent["description"], receipt_email=intent["receipt_email"],
            source=pm, payment_intent=intent["id"], metadata=intent["metadata"],
        )  # fmt: skip
        intent["latest_charge"] = charge["id"]
        if charge["status"] == "failed":
            error = self._decline(charge)
            intent["status"], intent["payment_method"] = "requires_payment_method", None
            intent["last_payment_error"] = dict(error.error)
            error.error["payment_intent"] = copy.deepcopy(intent)
            raise error
        intent["status"], intent["amount_received"] = "succeeded", intent["amount"]

    def _pi_update(self, p: JSON, ids: dict[str, str]) -> JSON:
        intent = self._get(self.payment_intents, ids["id"], "payment_intent", executed=True)
        for name in ("description", "receipt_email"):
            if name in p:
                intent[name] = _str(p, name)
        _metadata(intent, p)
        return intent

    def _refund_create(self, p: JSON, _ids: dict[str, str]) -> JSON:
        amount = _int(p, "amount", minimum=1)
        reason = _str(p, "reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise StripeError(400, f"Invalid reason: {reason}", param="reason")
        if p.get("charge"):
            charge = self._get(self.charges, str(p["charge"]), "charge", "charge", executed=True)
        elif p.get("payment_intent"):
            intent = self._get(self.payment_intents, str(p["payment_intent"]), "payment_intent",
                               "payment_intent", executed=True)  # fmt: skip
            if intent["latest_charge"] is None or intent["status"] != "succeeded":
                raise StripeError(400, "This PaymentIntent does not have a successful charge "
                                  "to refund.", code="charge_not_refundable",
                                  executed=True)  # fmt: skip
            charge = self.charges[intent["latest_charge"]]
        else:
            raise StripeError(400, "One of the following params should be provided for this "
                              "request: payment_intent or charge.",
                              code="parameter_missing")  # fmt: skip
        left = charge["amount_captured"] - charge["amount_refunded"]
        if charge["refunded"] or left <= 0:
            raise StripeError(400, f"Charge {charge['id']} has already been refunded.",
                              code="charge_already_refunded", executed=True)  # fmt: skip
        amount = left if amount is None else amount
        if amount > left:
            raise StripeError(400, f"Refund amount ({amount}) is greater than unrefunded "
                              f"amount on charge ({left})", code="amount_too_large",
                              param="amount", executed=True)  # fmt: skip
        refund = {
            "id": self._id("re_"), "object": "refund", "amount": amount,
            "balance_transaction": self._id("txn_"), "charge": charge["id"],
            "created": int(self.clock()), "currency": charge["currency"], "metadata": {},
            "payment_intent": charge["payment_intent"], "reason": reason,
            "receipt_number": None, "status": "succeeded",
        }  # fmt: skip
        _metadata(refund, p)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self.refunds[refund["id"]] = refund
        return self._register(refund)

    def _get(
        self, table: dict[str, JSON], oid: str, kind: str, param: str = "id", *, executed: bool
    ) -> JSON:
        if oid not in table:
            raise StripeError(404, f"No such {kind}: '{oid}'", code="resource_missing",
                              param=param, executed=executed)  # fmt: skip
        return table[oid]

    def _list(self, table: dict[str, JSON], url: str, p: JSON, filters: dict[str, str]) -> JSON:
        limit = _int(p, "limit", minimum=1)
        limit = 10 if limit is None else limit
        if limit > 100:
            raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
        after, before = _str(p, "starting_after"), _str(p, "ending_before")
        if after and before:
            raise StripeError(400, "You may only specify one of these parameters: "
                              "starting_after, ending_before.")  # fmt: skip
        rows = [o for o in table.values() if all(o.get(k) == v for k, v in filters.items())]
        created_ok = self._created_filter(p.get("created"))
        rows = [o for o in rows if created_ok(o["created"])]
        rows.sort(key=lambda o: self._order[o["id"]], reverse=True)
        cursor = after or before
        if cursor is not None and cursor not in table:
            raise StripeError(400, f"No such object: '{cursor}'", code="resource_missing",
                              param="starting_after" if after else "ending_before")  # fmt: skip
        if before:
            mark = self._order[before]
            rows = [o for o in rows if self._order[o["id"]] > mark]
            page, has_more = rows[-limit:], len(rows) > limit
        else:
            if after:
                mark = self._order[after]
                rows = [o for o in rows if self._order[o["id"]] < mark]
            page, has_more = rows[:limit], len(rows) > limit
        return {"object": "list", "data": page, "has_more": has_more, "url": url}

    @staticmethod
    def _created_filter(spec: Any) -> Callable[[int], bool]:
        """A predicate for `created=N` or `created[gt|gte|lt|lte]=N` (validated up front)."""
        if spec is None:
            return lambda _created: True
        if isinstance(spec, str):
            spec = {"eq": spec}
        if not isinstance(spec, dict) or not set(spec) <= {"eq", "gt", "gte", "lt", "lte"}:
            raise StripeError(400, "Invalid created filter: use created[gt|gte|lt|lte].",
                              param="created")  # fmt: skip
        ops: dict[str, Callable[[int, int], bool]] = {
            "eq": lambda a, b: a == b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
        }  # fmt: skip
        bounds: list[tuple[Callable[[int, int], bool], int]] = []
        for op, raw in spec.items():
            try:
                bounds.append((ops[op], int(str(raw))))
            except ValueError:
                raise StripeError(400, f"Invalid integer: {raw}", param=f"created[{op}]") from None
        return lambda created: all(check(created, bound) for check, bound in bounds)

    def _expandable(self) -> dict[str, dict[str, JSON]]:
        return {"customer": self.customers, "payment_intent": self.payment_intents,
                "latest_charge": self.charges, "charge": self.charges}  # fmt: skip

    def _check_expand(self, paths: Any, *, in_list: bool) -> None:
        """Refuse bad `expand[]` values before anything is executed."""
        if not isinstance(paths, list):
            raise StripeError(400, "Invalid array: expand must be an array.", param="expand")
        for path in paths:
            name = path[5:] if in_list and path.startswith("data.") else path
            if name not in self._expandable() or (in_list and not path.startswith("data.")):
                raise StripeError(400, f"This property cannot be expanded ({path}).",
                                  param="expand")  # fmt: skip

    def _expand(self, obj: JSON, paths: list[str], *, in_list: bool) -> JSON:
        """A copy of `obj` with the (checked) `paths` replaced by the objects they name."""
        expandable = self._expandable()
        out = copy.deepcopy(obj)
        for path in paths:
            name = path[5:] if in_list else path
            for target in out["data"] if in_list else [out]:
                ref = target.get(name)
                if isinstance(ref, str) and ref in expandable[name]:
                    target[name] = copy.deepcopy(expandable[name][ref])
        return out

    # ------------------------------------------------------------------ HTTP plumbing
    def _build_app(self) -> web.Application:
        app = web.Application()
        ch, cu = self.charges, self.customers
        pi, re_ = self.payment_intents, self.refunds
        ops: list[tuple[str, str, Callable[[JSON, dict[str, str]], JSON], set[str]]] = [
            ("GET", "/v1/charges", lambda p, _: self._list(ch, "/v1/charges", p, {
                k: p[k] for k in ("customer", "payment_intent", "transfer_group") if k in p}),
             _LIST | {"customer", "payment_intent", "transfer_group"}),
            ("POST", "/v1/charges", self._charge_create,
             {"amount", "currency", "customer", "description", "metadata", "receipt_email",
              "source", "shipping", "statement_descriptor", "transfer_group", "expand"}),
            ("GET", "/v1/charges/{id}", lambda p, i: self._get(ch, i["id"], "charge",
                                                               executed=False), {"expand"}),
            ("POST", "/v1/charges/{id}", self._charge_update,
             {"description", "metadata", "receipt_email", "shipping", "transfer_group",
              "expand"}),
            ("GET", "/v1/customers", lambda p, _: self._list(cu, "/v1/customers", p, {
                k: p[k] for k in ("email",) if k in p}), _LIST | {"email"}),
            ("POST", "/v1/customers", self._customer_create,
             {"email", "name", "description", "phone", "address", "metadata", "expand"}),
            ("GET", "/v1/customers/{id}", lambda p, i: self._get(cu, i["id"], "customer",
                                                                 executed=False), {"expand"}),
            ("POST", "/v1/customers/{id}", self._customer_update,
             {"email", "name", "description", "phone", "address", "metadata", "expand"}),
            ("GET", "/v1/payment_intents", lambda p, _: self._list(pi, "/v1/payment_intents",
             p, {k: p[k] for k in ("customer",) if k in p}), _LIST | {"customer"}),
            ("POST", "/v1/payment_intents", self._pi_create,
             {"amount", "currency", "customer", "description", "metadata", "receipt_email",
              "payment_method", "payment_method_types", "confirm", "capture_method",
              "automatic_payment_methods", "return_url", "off_session", "expand"}),
            ("GET", "/v1/payment_intents/{id}", lambda p, i: self._get(
                pi, i["id"], "payment_intent", executed=False), {"expand", "client_secret"}),
            ("POST", "/v1/payment_intents/{id}", self._pi_update,
             {"description", "metadata", "receipt_email", "expand"}),
            ("POST", "/v1/payment_intents/{id}/confirm", self._pi_confirm,
             {"payment_method", "return_url", "off_session", "expand"}),
            ("GET", "/v1/refunds", lambda p, _: self._list(re_, "/v1/refunds", p, {
                k: p[k] for k in ("charge", "payment_intent") if k in p}),
             _LIST | {"charge", "payment_intent"}),
            ("POST", "/v1/refunds", self._refund_create,
             {"charge", "payment_intent", "amount", "reason", "metadata", "expand"}),
            ("GET", "/v1/refunds/{id}", lambda p, i: self._get(re_, i["id"], "refund",
                                                               executed=False), {"expand"}),
        ]  # fmt: skip
        for method, path, op, allowed in ops:
            app.router.add_route(method, path, self._endpoint(op, allowed))
        app.router.add_get("/_sandbox/faults", self._faults_get)
        app.router.add_post("/_sandbox/faults", self._faults_post)
        app.router.add_delete("/_sandbox/faults", self._faults_delete)
        app.router.add_get("/_sandbox/ledger", self._ledger_get)
        app.router.add_get("/_sandbox/state", self._state_get)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    def _respond(self, status: int, body: JSON, headers: dict[str, str]) -> web.Response:
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    def _take(self, knob: str, request: web.Request) -> bool:
        with self._lock:
            match = self.faults.match
            if match and not f"{request.method} {request.path}".startswith(match):
                return False
            left: int = getattr(self.faults, knob)
            if left <= 0:
                return False
            setattr(self.faults, knob, left - 1)
            return True

    def _authenticated(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        key: str | None = None
        if header.startswith("Bearer "):
            key = header[7:].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        return key

    def _endpoint(
        self, op: Callable[[JSON, dict[str, str]], JSON], allowed: set[str]
    ) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            request_id = "req_" + secrets.token_hex(7)
            headers = {"Request-Id": request_id, "Stripe-Version": "2024-06-20"}
            key = self._authenticated(request)
            if key is None:
                return self._respond(401, {"error": {"type": "invalid_request_error",
                    "message": "You did not provide an API key. You need to provide your API "
                    "key in the Authorization header, using Bearer auth (e.g. 'Authorization: "
                    "Bearer YOUR_SECRET_KEY')."}}, headers)  # fmt: skip
            if key != self.api_key:
                shown = (key[:8] if key.startswith(("sk_test_", "sk_live_")) else key[:3]) + "****"
                headers["WWW-Authenticate"] = 'Basic realm="Stripe"'
                return self._respond(401, {"error": {"type": "invalid_request_error",
                    "message": f"Invalid API Key provided: {shown}"}}, headers)  # fmt: skip
            write = request.method == "POST"
            if write and self._take("drop_before_apply_next", request):
                return self._drop(request)
            if self._take("fail_next", request):
                return self._injected_failure(headers)
            try:
                params = await self._params(request, allowed)
            except StripeError as err:
                return self._respond(err.status, {"error": err.error}, headers)
            idem = request.headers.get("Idempotency-Key") if write else None
            status, body, replayed, applied = await self._run(
                request, op, params, key, idem, request_id
            )
            if idem is not None:
                headers["Idempotency-Key"] = idem
            if replayed is not None:
                headers["Idempotent-Replayed"] = "true"
                headers["Original-Request"] = replayed
            elif applied and self._take("drop_after_apply_next", request):
                return self._drop(request)
            if self._take("malformed_next", request):
                text = _dumps(body)
                return web.Response(status=status, text=text[: len(text) // 2], headers=headers,
                                    content_type="application/json")  # fmt: skip
            return self._respond(status, body, headers)

        return handle

    async def _run(
        self,
        request: web.Request,
        op: Callable[[JSON, dict[str, str]], JSON],
        params: JSON,
        api_key: str,
        idem: str | None,
        request_id: str,
    ) -> tuple[int, JSON, str | None, bool]:
        """Execute with Stripe's idempotency rules; returns (status, body, replayed-from,
        whether a write was applied)."""
        digest = _hash(request.method, request.path, params)
        slot = (api_key, idem or "")
        if idem is not None:
            with self._lock:
                saved = self._saved.get(slot)
                if saved is not None and saved.done and self.clock() - saved.at > IDEMPOTENCY_TTL:
                    saved = None
                if saved is not None and not saved.done:
                    return 409, {"error": {"type": "idempotency_error",
                        "code": "idempotency_key_in_use", "message": "There is currently "
                        "another in-progress request using this Idempotent Key (that probably "
                        "means you submitted twice, and the other request is still going "
                        f"through): {idem}. Please try again later."}}, None, False  # fmt: skip
                if saved is not None and (saved.method, saved.path) != (
                    request.method,
                    request.path,
                ):
                    return 400, {"error": {"type": "idempotency_error", "message": "Keys for "
                        "idempotent requests can only be used for the same endpoint they were "
                        f"first used for ('{saved.method} {saved.path}' vs '{request.method} "
                        f"{request.path}'). Try using a key other than '{idem}' if you meant "
                        "to execute a different request."}}, None, False  # fmt: skip
                if saved is not None and saved.params_hash != digest:
                    return 400, {"error": {"type": "idempotency_error", "message": "Keys for "
                        "idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{idem}' if you "
                        "meant to execute a different request."}}, None, False  # fmt: skip
                if saved is not None:
                    return saved.status, copy.deepcopy(saved.body), saved.request_id, False
                if len(idem) > 255:
                    return 400, {"error": {"type": "invalid_request_error", "message":
                        "Idempotency keys can be at most 255 characters long.",
                        "param": "Idempotency-Key"}}, None, False  # fmt: skip
                self._saved[slot] = _Saved(request.method, request.path, digest, self.clock())
        applied = False
        try:
            if self.faults.latency_ms:
                await asyncio.sleep(self.faults.latency_ms / 1000)
            expand = params.get("expand") or []
            in_list = request.method == "GET" and not request.match_info
            self._check_expand(expand, in_list=in_list)
            with self._lock:
                obj = op(params, dict(request.match_info))
                if request.method == "POST":
                    applied = True
                    self.ledger.append(
                        Effect(request.method, request.path, idem, digest, self.clock(), obj["id"])
                    )
                status, body = 200, self._expand(obj, expand, in_list=in_list)
        except StripeError as err:
            status, body = err.status, {"error": err.error}
            if request.method == "POST" and err.executed and err.status == 402:
                applied = True  # a declined charge exists now
                self.ledger.append(Effect(request.method, request.path, idem, digest,
                                          self.clock(), str(err.error.get("charge"))))  # fmt: skip
            if not err.executed and not applied and idem is not None:
                with self._lock:
                    self._saved.pop(slot, None)
                return status, body, None, False
        except Exception:
            status, body = 500, {"error": {"type": "api_error",
                                           "message": "An unknown error occurred"}}  # fmt: skip
        if idem is not None:
            with self._lock:
                done = _Saved(request.method, request.path, digest, self.clock(), status,
                              copy.deepcopy(body), request_id, True)  # fmt: skip
                self._saved[slot] = done
        return status, body, None, applied

    async def _params(self, request: web.Request, allowed: set[str]) -> JSON:
        pairs = list(request.query.items())
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype not in ("application/x-www-form-urlencoded", "", "application/octet-stream"):
                raise StripeError(400, "Invalid request: Stripe accepts only "
                                  "application/x-www-form-urlencoded request bodies, not "
                                  f"{ctype}.")  # fmt: skip
            from urllib.parse import parse_qsl

            text = (await request.read()).decode("utf-8", "replace")
            pairs += parse_qsl(text, keep_blank_values=True)
        params = decode_form(pairs)
        for name in params:
            if name not in allowed:
                raise StripeError(400, f"Received unknown parameter: {name}", param=name)
        return params

    def _injected_failure(self, headers: dict[str, str]) -> web.Response:
        status = self.faults.fail_status
        if self.faults.retry_after is not None:
            headers["Retry-After"] = str(self.faults.retry_after)
        if status == 429:
            error = {"type": "invalid_request_error", "code": "rate_limit", "message":
                     "Request rate limit exceeded. Learn more about rate limits here "
                     "https://stripe.com/docs/rate-limits."}  # fmt: skip
        else:
            error = {"type": "api_error", "message": "An unknown error occurred"}
        return self._respond(status, {"error": error}, headers)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPServiceUnavailable()  # never reaches the closed socket

    async def _unknown(self, request: web.Request) -> web.Response:
        return self._respond(404, {"error": {"type": "invalid_request_error", "message":
            f"Unrecognized request URL ({request.method}: {request.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/."}},
            {})  # fmt: skip

    # ------------------------------------------------------------------ control endpoints
    async def _faults_get(self, _request: web.Request) -> web.Response:
        return web.json_response(asdict(self.faults))

    async def _faults_post(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            with self._lock:
                self.faults.update(changes)
        except (ValueError, TypeError) as err:
            return web.json_response({"error": f"bad fault settings: {err}"}, status=400)
        return web.json_response(asdict(self.faults))

    async def _faults_delete(self, _request: web.Request) -> web.Response:
        with self._lock:
            self.faults = StripeFaults()
        return web.json_response(asdict(self.faults))

    async def _ledger_get(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(e) for e in self.ledger])

    async def _state_get(self, _request: web.Request) -> web.Response:
        return web.json_response(self.summary())


def _dumps(body: Any) -> str:
    return json.dumps(body, indent=2)
