"""The `stripe` connector: charges, payment intents, customers and refunds.

References followed (Stripe API, docs.stripe.com):
  * authentication, the secret key as HTTP Basic user name: https://docs.stripe.com/api/authentication
  * form-encoded request bodies with nested keys (`metadata[k]=v`, `expand[]=x`):
    https://docs.stripe.com/api (request conventions) and https://docs.stripe.com/expand
  * versioning with the `Stripe-Version` header: https://docs.stripe.com/api/versioning
  * pagination (`limit` 1-100, `starting_after`, `has_more`; newest first):
    https://docs.stripe.com/api/pagination
  * idempotent requests (`Idempotency-Key` on POST; the first result is saved for 24 hours and
    replayed; other parameters with the same key -> `idempotency_error`; a concurrent request
    with the same key -> 409): https://docs.stripe.com/api/idempotent_requests
  * errors (`{"error": {"type", "code", "message", "decline_code"}}`, 402 for card errors, 424,
    `Stripe-Should-Retry`): https://docs.stripe.com/api/errors and
    https://docs.stripe.com/error-low-level
  * objects and endpoints: https://docs.stripe.com/api/charges ,
    https://docs.stripe.com/api/payment_intents , https://docs.stripe.com/api/customers ,
    https://docs.stripe.com/api/refunds ; metadata: https://docs.stripe.com/metadata

Polling (`list_charges`, `list_payment_intents`): the cursor is a unix time in seconds. A poll
asks for `created[gt] = cursor - 1` (so the cursor's own second is read again; the engine's
item journal drops repeats) and follows `has_more`/`starting_after` without relying on list
order (Stripe lists newest first, some stand-ins oldest first). The new cursor is the newest
`created` seen, held back to the oldest charge still `pending` so it is seen again once it
settles. The status filter is applied here: Stripe's list endpoints have none.

Every write sends `Idempotency-Key: <call.idempotency_key>`; Stripe replays the first result
for that key, so a write repeated after a timeout happens once.

Layout: `models` (settings, API objects, action inputs and outputs), `wire` (form encoding,
error classification, parsing API objects), `session` (the HTTP client and the form-encoding
request helpers, opened and closed per connection), this module (polling, the actions and the
`connector` object).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowkit.connectors.base import (
    Action,
    CallContext,
    Change,
    Connector,
    Effect,
    ErrorKind,
    Idempotency,
)
from flowkit.connectors.stripe.models import (
    Charge,
    CreateCustomerInput,
    CreateRefundInput,
    Customer,
    GetChargeInput,
    GetCustomerInput,
    ListChargesInput,
    ListChargesOutput,
    ListCustomersInput,
    ListCustomersOutput,
    ListPaymentIntentsInput,
    ListPaymentIntentsOutput,
    PaymentIntent,
    Refund,
    StripeSettings,
    UpdateChargeMetadataInput,
)
from flowkit.connectors.stripe.session import StripeSession, _close, _open, make_client
from flowkit.connectors.stripe.wire import _parse, _scalar, _segment, form_pairs
from flowkit.errors import ConnectorError

__all__ = [
    "Charge",
    "Customer",
    "PaymentIntent",
    "Refund",
    "StripeSession",
    "StripeSettings",
    "connector",
    "form_pairs",
    "make_client",
]

DOCS = "https://docs.stripe.com/api"


# polling -------------------------------------------------------------------------------------

Cursor = int | str | None


def _cursor_seconds(cursor: Cursor) -> int | None:
    if cursor is None or cursor == "":
        return None
    try:
        return int(float(cursor))
    except ValueError:
        raise ConnectorError(
            f"cursor {cursor!r} is not a unix time in seconds", kind=ErrorKind.VALIDATION
        ) from None


async def _poll(
    session: StripeSession,
    path: str,
    cursor: Cursor,
    page_size: int,
    extra: Mapping[str, Any],
    *,
    server_side_created: bool,
) -> tuple[list[dict[str, Any]], int | None]:
    since = _cursor_seconds(cursor)
    params: dict[str, Any] = {"limit": page_size, **extra}
    if since is not None and server_side_created:
        params["created"] = {"gt": since - 1}
    objects = await session.list_all(path, params)
    if since is not None:  # also here: some endpoints (or stand-ins) ignore the filter
        objects = [o for o in objects if int(o.get("created", 0)) >= since]
    newest = max((int(o["created"]) for o in objects), default=since)
    pending = [int(o["created"]) for o in objects if o.get("status") == "pending"]
    if pending and newest is not None:
        newest = min(newest, min(pending))
    if since is not None and newest is not None:
        newest = max(newest, since)
    objects.sort(key=lambda o: (int(o.get("created", 0)), str(o.get("id"))))  # oldest first
    return objects, newest


class ListCharges(Action[ListChargesInput, ListChargesOutput]):
    name = "list_charges"
    description = "Charges created since a cursor (a trigger), with an optional status filter."
    effect = Effect.READ
    Input = ListChargesInput
    Output = ListChargesOutput

    async def run(
        self, session: StripeSession, input: ListChargesInput, call: CallContext
    ) -> ListChargesOutput:
        extra: dict[str, Any] = {}
        if input.customer:
            extra["customer"] = input.customer
        if input.expand_customer:
            extra["expand"] = ["data.customer"]
        objects, newest = await _poll(
            session, "/v1/charges", input.cursor, input.limit, extra, server_side_created=True
        )
        items = [
            _parse(Charge, o, "GET /v1/charges")
            for o in objects
            if input.status is None or o.get("status") == input.status
        ]
        return ListChargesOutput(items=items, cursor=None if newest is None else str(newest))


class ListPaymentIntents(Action[ListPaymentIntentsInput, ListPaymentIntentsOutput]):
    name = "list_payment_intents"
    description = "PaymentIntents created since a cursor (a trigger), optional status filter."
    effect = Effect.READ
    Input = ListPaymentIntentsInput
    Output = ListPaymentIntentsOutput

    async def run(
        self, session: StripeSession, input: ListPaymentIntentsInput, call: CallContext
    ) -> ListPaymentIntentsOutput:
        extra = {"customer": input.customer} if input.customer else {}
        objects, newest = await _poll(
            session,
            "/v1/payment_intents",
            input.cursor,
            input.limit,
            extra,
            server_side_created=input.created_filter,
        )
        items = [
            _parse(PaymentIntent, o, "GET /v1/payment_intents")
            for o in objects
            if input.status is None or o.get("status") == input.status
        ]
        return ListPaymentIntentsOutput(items=items, cursor=None if newest is None else str(newest))


# single objects --------------------------------------------------------------------------------


class GetCharge(Action[GetChargeInput, Charge]):
    name = "get_charge"
    description = "Retrieve one charge."
    effect = Effect.READ
    Input = GetChargeInput
    Output = Charge

    async def run(self, session: StripeSession, input: GetChargeInput, call: CallContext) -> Charge:
        params = {"expand": ["customer"]} if input.expand_customer else {}
        raw = await session.get(f"/v1/charges/{_segment(input.id)}", params)
        return _parse(Charge, raw, "GET /v1/charges/{id}")


class GetCustomer(Action[GetCustomerInput, Customer]):
    name = "get_customer"
    description = "Retrieve one customer."
    effect = Effect.READ
    Input = GetCustomerInput
    Output = Customer

    async def run(
        self, session: StripeSession, input: GetCustomerInput, call: CallContext
    ) -> Customer:
        raw = await session.get(f"/v1/customers/{_segment(input.id)}")
        return _parse(Customer, raw, "GET /v1/customers/{id}")


class ListCustomers(Action[ListCustomersInput, ListCustomersOutput]):
    name = "list_customers"
    description = "All customers, or those with one email."
    effect = Effect.READ
    Input = ListCustomersInput
    Output = ListCustomersOutput

    async def run(
        self, session: StripeSession, input: ListCustomersInput, call: CallContext
    ) -> ListCustomersOutput:
        params: dict[str, Any] = {"limit": input.limit}
        if input.email:
            params["email"] = input.email
        objects = await session.list_all("/v1/customers", params, max_pages=input.max_pages)
        return ListCustomersOutput(
            items=[_parse(Customer, o, "GET /v1/customers") for o in objects]
        )


# writes ----------------------------------------------------------------------------------------


class UpdateChargeMetadata(Action[UpdateChargeMetadataInput, Charge]):
    name = "update_charge_metadata"
    description = "Set metadata keys on a charge (e.g. mark it invoiced)."
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = UpdateChargeMetadataInput
    Output = Charge

    async def run(
        self, session: StripeSession, input: UpdateChargeMetadataInput, call: CallContext
    ) -> Charge:
        raw = await session.post(
            f"/v1/charges/{_segment(input.id)}",
            {"metadata": input.metadata},
            call.idempotency_key,
        )
        return _parse(Charge, raw, "POST /v1/charges/{id}")

    async def plan(
        self, session: StripeSession, input: UpdateChargeMetadataInput, call: CallContext
    ) -> list[Change]:
        current = await session.get(f"/v1/charges/{_segment(input.id)}")
        existing = current.get("metadata") or {}
        changes = []
        for key, value in input.metadata.items():
            new = None if value is None or value == "" else _scalar(value)
            if existing.get(key) != new:
                changes.append(Change(input.id, f"metadata.{key}", existing.get(key), new))
        return changes


class CreateRefund(Action[CreateRefundInput, Refund]):
    name = "create_refund"
    description = "Refund a charge or payment intent, fully or partly."
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = CreateRefundInput
    Output = Refund

    async def run(
        self, session: StripeSession, input: CreateRefundInput, call: CallContext
    ) -> Refund:
        params = input.model_dump(exclude_none=True)
        if not params.get("metadata"):
            params.pop("metadata", None)
        raw = await session.post("/v1/refunds", params, call.idempotency_key)
        return _parse(Refund, raw, "POST /v1/refunds")


class CreateCustomer(Action[CreateCustomerInput, Customer]):
    name = "create_customer"
    description = "Create a customer."
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = CreateCustomerInput
    Output = Customer

    async def run(
        self, session: StripeSession, input: CreateCustomerInput, call: CallContext
    ) -> Customer:
        params = input.model_dump(exclude_none=True)
        if not params.get("metadata"):
            params.pop("metadata", None)
        raw = await session.post("/v1/customers", params, call.idempotency_key)
        return _parse(Customer, raw, "POST /v1/customers")


connector = Connector(
    "stripe",
    description="Stripe payments: poll charges and payment intents, customers, refunds, metadata.",
    settings=StripeSettings,
    actions=[
        ListCharges(),
        ListPaymentIntents(),
        GetCharge(),
        GetCustomer(),
        ListCustomers(),
        UpdateChargeMetadata(),
        CreateRefund(),
        CreateCustomer(),
    ],
    open=_open,
    close=_close,
    docs_url=DOCS,
)
