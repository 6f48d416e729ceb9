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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from flowkit.connectors.base import (
    Action,
    CallContext,
    Change,
    Connector,
    Effect,
    ErrorKind,
    Idempotency,
    Input,
    Output,
    Runtime,
    reveal,
)
from flowkit.connectors.http_options import TransportSettings, client_options
from flowkit.errors import ConnectorError

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient

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


class StripeSettings(TransportSettings):
    """Connection settings for one Stripe account."""

    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr = Field(description="Secret key (`sk_live_...`, `sk_test_...`) or rk_.")
    base_url: str = Field("https://api.stripe.com", description="API root (tests: a stand-in).")
    api_version: str | None = Field(None, description="Pin `Stripe-Version`, e.g. 2024-06-20.")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for connect and answer.")
    rate_limit: float | None = Field(
        None, gt=0, description="Requests per second to stay under (live 100/s, test mode 25/s)."
    )
    max_connections: int = Field(20, ge=1, description="Connections kept open to Stripe.")


# models --------------------------------------------------------------------------------------


class Address(Output):
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class BillingDetails(Output):
    email: str | None = None
    name: str | None = None
    phone: str | None = None
    address: Address | None = None


class Customer(Output):
    """A Stripe customer (https://docs.stripe.com/api/customers/object)."""

    id: str
    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    created: int = 0
    metadata: dict[str, str] = Field(default_factory=dict)
    address: Address | None = None
    deleted: bool = False


class Charge(Output):
    """A Stripe charge (https://docs.stripe.com/api/charges/object); amounts in cents."""

    id: str
    amount: int
    currency: str
    status: str
    created: int
    paid: bool = False
    customer: str | None = Field(None, description="The customer's id.")
    customer_object: Customer | None = Field(
        None, description="The expanded customer when `expand_customer` was asked."
    )
    receipt_email: str | None = None
    billing_details: BillingDetails = Field(default_factory=BillingDetails)
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    payment_intent: str | None = None
    amount_refunded: int = 0
    refunded: bool = False
    failure_message: str | None = None


class PaymentIntent(Output):
    """A PaymentIntent (https://docs.stripe.com/api/payment_intents/object)."""

    id: str
    amount: int
    currency: str
    status: str
    created: int
    amount_received: int = 0
    customer: str | None = None
    customer_object: Customer | None = None
    receipt_email: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    latest_charge: str | None = None


class Refund(Output):
    """A refund (https://docs.stripe.com/api/refunds/object)."""

    id: str
    amount: int
    currency: str
    status: str | None = None
    created: int = 0
    charge: str | None = None
    payment_intent: str | None = None
    reason: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


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


class StripeSession:
    """An open connection: the HTTP client and the form-encoding request helpers."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.client.get_json(path, params=form_pairs(params or {}))

    async def post(
        self, path: str, params: Mapping[str, Any], idempotency_key: str | None = None
    ) -> Any:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = urlencode(form_pairs(params))
        return await self.client.post_json(path, content=body, headers=headers)

    async def list_all(
        self, path: str, params: Mapping[str, Any], *, max_pages: int = 1000
    ) -> list[dict[str, Any]]:
        """Every object of a list endpoint, following `has_more` and `starting_after`."""
        objects: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(max_pages):
            page_params = dict(params)
            if after:
                page_params["starting_after"] = after
            page = await self.get(path, page_params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise ConnectorError(
                    f"unexpected answer from GET {path}: no `data` list", kind=ErrorKind.PERMANENT
                )
            objects.extend(data)
            if not page.get("has_more") or not data:
                return objects
            last = data[-1].get("id")
            if not last or last == after:
                raise ConnectorError(
                    f"pagination did not advance on GET {path}: starting_after {last!r} again",
                    kind=ErrorKind.PERMANENT,
                )
            after = last
        raise ConnectorError(
            f"pagination of GET {path} did not finish within {max_pages} pages",
            kind=ErrorKind.PERMANENT,
        )


def make_client(
    settings: StripeSettings,
    runtime: Runtime,
    transport: httpx.AsyncBaseTransport | None = None,
) -> HttpClient:
    """The HTTP client for a connection (tests pass a `transport`)."""
    from flowkit.connectors.auth import BasicAuth
    from flowkit.connectors.http_client import HttpClient, TokenBucket

    key = reveal(settings.api_key)
    headers = {"Accept": "application/json"}
    if settings.api_version:
        headers["Stripe-Version"] = settings.api_version
    limiter = None
    if settings.rate_limit:
        limiter = TokenBucket(settings.rate_limit, max(1, int(settings.rate_limit)))
    client = HttpClient(
        settings.base_url,
        auth=BasicAuth(key, ""),
        headers=headers,
        timeout=settings.timeout,
        max_connections=settings.max_connections,
        rate_limiter=limiter,
        error_message=stripe_message,
        classify=stripe_kind,
        runtime=runtime,
        name=runtime.connection or "stripe",
        transport=transport,
        **client_options(settings, runtime, "stripe"),
    )
    client.add_secret(key)
    return client


async def _open(settings: StripeSettings, runtime: Runtime) -> StripeSession:
    return StripeSession(make_client(settings, runtime))


async def _close(session: StripeSession) -> None:
    await session.client.aclose()


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


class ListChargesInput(Input):
    cursor: int | str | None = Field(
        None, description="Unix seconds: return charges created at or after it (None: all)."
    )
    status: Literal["succeeded", "pending", "failed"] | None = Field(
        None, description="Keep only charges with this status."
    )
    customer: str | None = Field(None, description="Only this customer's charges.")
    limit: int = Field(100, ge=1, le=100, description="Page size (Stripe allows 1-100).")
    expand_customer: bool = Field(False, description="Also fetch each charge's customer.")


class ListChargesOutput(Output):
    items: list[Charge] = Field(description="Matching charges, oldest first.")
    cursor: str | None = Field(description="Unix seconds to pass as the next `cursor`.")


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


class ListPaymentIntentsInput(Input):
    cursor: int | str | None = Field(None, description="Unix seconds (see `list_charges`).")
    status: str | None = Field(None, description="Keep only intents with this status.")
    customer: str | None = Field(None, description="Only this customer's payment intents.")
    limit: int = Field(100, ge=1, le=100, description="Page size.")
    created_filter: bool = Field(
        True, description="Send `created[gt]` to Stripe (off for stand-ins that reject it)."
    )


class ListPaymentIntentsOutput(Output):
    items: list[PaymentIntent]
    cursor: str | None


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


class GetChargeInput(Input):
    id: str = Field(min_length=1, description="Charge id (`ch_...`).")
    expand_customer: bool = False


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


class GetCustomerInput(Input):
    id: str = Field(min_length=1, description="Customer id (`cus_...`).")


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


class ListCustomersInput(Input):
    email: str | None = Field(None, description="Only customers with this exact email.")
    limit: int = Field(100, ge=1, le=100, description="Page size.")
    max_pages: int = Field(100, ge=1, description="Stop with an error after this many pages.")


class ListCustomersOutput(Output):
    items: list[Customer]


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


def _segment(value: str) -> str:
    """An object id as one path segment (ids never contain `/`; refuse rather than escape)."""
    if "/" in value or "?" in value or "#" in value:
        raise ConnectorError(f"invalid Stripe id {value!r}", kind=ErrorKind.VALIDATION)
    return value


# writes ----------------------------------------------------------------------------------------

MetadataValue = str | int | float | bool | None


class UpdateChargeMetadataInput(Input):
    id: str = Field(min_length=1, description="Charge id (`ch_...`).")
    metadata: dict[str, MetadataValue] = Field(
        description="Keys to set (merged into existing metadata); a null value removes a key."
    )


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


class CreateRefundInput(Input):
    charge: str | None = Field(None, description="Charge to refund (`ch_...`).")
    payment_intent: str | None = Field(None, description="Or the PaymentIntent to refund.")
    amount: int | None = Field(None, gt=0, description="Cents; default: the whole remainder.")
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_target(self) -> CreateRefundInput:
        if (self.charge is None) == (self.payment_intent is None):
            raise ValueError("give exactly one of `charge` or `payment_intent`")
        return self


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


class CreateCustomerInput(Input):
    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


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
