"""The Stripe sandbox's route handlers per resource (charges, customers, payment intents,
refunds): each takes the decoded parameters and the path ids and returns the object it wrote."""

from __future__ import annotations

import copy

from flowkit.sandbox.stripe.params import (
    JSON,
    StripeError,
    _bool,
    _int,
    _metadata,
    _required,
    _str,
)
from flowkit.sandbox.stripe.store import _CARDS, _Store


class _Endpoints(_Store):
    """One method per Stripe endpoint that writes; reads use `_get` and `_list`."""

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
