"""The Stripe sandbox's in-memory objects: customers, charges, payment intents and refunds, how
they are created and looked up, lists with Stripe's pagination and `created` filters,
`expand[]`, and the state queries tests use (`marked_charges`, `effects`, `summary`)."""

from __future__ import annotations

import copy
import random
import re
import string
import threading
from collections.abc import Callable
from typing import Any

from flowkit.sandbox.stripe.params import JSON, StripeError, _int, _metadata, _str
from flowkit.sandbox.stripe.records import Effect

_CARDS = {
    "pm_card_visa": ("visa", "4242", None),
    "tok_visa": ("visa", "4242", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "tok_mastercard": ("mastercard", "4444", None),
    "pm_card_chargeDeclined": ("visa", "0002", "generic_decline"),
    "tok_chargeDeclined": ("visa", "0002", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds"),
}


class _Store:
    """The objects of one account and the operations on them (the state; no HTTP)."""

    clock: Callable[[], float]
    customers: dict[str, JSON]
    charges: dict[str, JSON]
    payment_intents: dict[str, JSON]
    refunds: dict[str, JSON]
    ledger: list[Effect]
    _rng: random.Random
    _order: dict[str, tuple[int, int]]
    _seq: int
    _lock: threading.RLock

    # ------------------------------------------------------------------ in-process helpers
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
