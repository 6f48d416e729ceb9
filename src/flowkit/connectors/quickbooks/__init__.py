"""The `quickbooks` connector: customers, invoices and queries in QuickBooks Online.

Calls go to `{base_url}/v3/company/{realm_id}/...` with `?minorversion=` and JSON bodies,
through the shared `HttpClient`. Authentication is OAuth2 with a refresh token
(`OAuth2RefreshToken`): Intuit rotates refresh tokens, so the newest one is persisted in the
connection's key-value store and wins over the configured secret on later runs (keyed by
realm and a fingerprint of the configured token, so pasting a new token after reconnecting
the app takes effect at once). A 401 refreshes once and replays the request.

Every write carries `requestid=<idempotency key>`: QuickBooks answers a repeated requestid with
the original response instead of repeating the write, which makes `create_customer`,
`create_invoice` and `send_invoice` safe to retry after an unknown outcome.

Fault bodies `{"Fault": {"Error": [{"Message", "Detail", "code"}], "type"}}` are kept in the
error message and classified: 6240 Duplicate Name and 6140 Duplicate Document Number are
CONFLICT, 610 Object Not Found is NOT_FOUND, other ValidationFaults VALIDATION, AUTHENTICATION
faults AUTH, 429 / ThrottleExceeded (003001) RATE_LIMITED with `Retry-After`, 5xx TRANSIENT.

Layout: `models` (settings, inputs, outputs), `session` (HTTP session under the realm, OAuth2,
Fault classification), this module (the actions and the `connector` object).

References followed:
  https://developer.intuit.com/app/developer/qbo/docs/workflows/create-an-invoice
  https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
  https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/minor-versions
  https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
  https://blogs.intuit.com/2015/04/06/15346/  (requestid idempotency)
  https://support.workato.com/en/support/solutions/articles/1000186620-quickbooks-error-duplicate-name-exists
    (6240: DisplayName is unique across customers, vendors and employees; add a suffix)
  https://nango.dev/blog/quickbooks-oauth-refresh-token-invalid-grant  (rotation, invalid_grant)
  https://blogs.intuit.com/blog/2016/08/08/idg-concurrent-api-use-changes-coming-soon/  (429)
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
)
from flowkit.connectors.quickbooks.models import (
    CreateCustomerInput,
    CreateInvoiceInput,
    Customer,
    EmailAddress,
    FindCustomerInput,
    FindCustomerOutput,
    FindOrCreateCustomerInput,
    FindOrCreateCustomerOutput,
    GetInvoiceInput,
    Invoice,
    InvoiceLine,
    QueryInput,
    QueryOutput,
    QuickBooksSettings,
    Ref,
    SendInvoiceInput,
)
from flowkit.connectors.quickbooks.wire import entity_of, quote, request_id

# The HTTP session (httpx, TLS, OAuth2) is imported when a connection opens, not with the
# models: `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    from flowkit.connectors.base import Runtime
    from flowkit.connectors.quickbooks.session import QuickBooksSession

__all__ = [
    "CreateInvoiceInput",
    "Customer",
    "Invoice",
    "QueryInput",
    "QuickBooksSettings",
    "connector",
    "quote",
    "request_id",
]

DOCS_URL = "https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/invoice"


class FindCustomer(Action[FindCustomerInput, FindCustomerOutput]):
    name = "find_customer"
    description = "Find an active customer by primary email address."
    effect = Effect.READ
    Input = FindCustomerInput
    Output = FindCustomerOutput

    async def run(
        self, session: QuickBooksSession, input: FindCustomerInput, call: CallContext
    ) -> FindCustomerOutput:
        matches = await session.customers_by(f"PrimaryEmailAddr = {quote(input.email)}")
        return FindCustomerOutput(found=bool(matches), customer=matches[0] if matches else None)


class CreateCustomer(Action[CreateCustomerInput, Customer]):
    name = "create_customer"
    description = "Create a customer (DisplayName must be unique); requestid makes it idempotent."
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = CreateCustomerInput
    Output = Customer

    async def run(
        self, session: QuickBooksSession, input: CreateCustomerInput, call: CallContext
    ) -> Customer:
        name = input.default_name(input.email)
        if not name:
            raise ConnectorError(
                "create_customer needs display_name, a name, company_name or email",
                kind=ErrorKind.VALIDATION,
            )
        body = input.body(input.email, _clean_name(name))
        data = await session.write(
            "customer", body, request_id(call.idempotency_key), entity="Customer"
        )
        return Customer.model_validate(data)


def _clean_name(name: str) -> str:
    # QuickBooks rejects a colon in DisplayName (it separates sub-customers).
    return " ".join(name.replace(":", " ").split())[:500]


class FindOrCreateCustomer(Action[FindOrCreateCustomerInput, FindOrCreateCustomerOutput]):
    name = "find_or_create_customer"
    description = (
        "Return the customer with this email, creating it if missing; a DisplayName taken by "
        "someone else (error 6240) gets the email as suffix."
    )
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = FindOrCreateCustomerInput
    Output = FindOrCreateCustomerOutput

    async def run(
        self, session: QuickBooksSession, input: FindOrCreateCustomerInput, call: CallContext
    ) -> FindOrCreateCustomerOutput:
        email = input.email
        found = await session.customers_by(f"PrimaryEmailAddr = {quote(email)}")
        if found:
            return FindOrCreateCustomerOutput(
                customer=found[0], customer_id=found[0].Id, created=False
            )
        base = _clean_name(input.default_name(email))
        candidates = [base, _clean_name(f"{base} ({email})")] if base != email else [email]
        last: ConnectorError | None = None
        for attempt, name in enumerate(candidates):
            key = request_id(call.idempotency_key, f"c{attempt}" if attempt else "")
            try:
                data = await session.write(
                    "customer", input.body(email, name), key, entity="Customer"
                )
            except ConnectorError as exc:
                if exc.kind is not ErrorKind.CONFLICT or "(code 6240)" not in exc.message:
                    raise
                last = exc
                holder = await session.customers_by(
                    f"DisplayName = {quote(name)} and Active in (true, false)"
                )
                mail = holder[0].PrimaryEmailAddr if holder else None
                if (
                    holder
                    and holder[0].Active
                    and mail
                    and (mail.Address or "").casefold() == email.casefold()
                ):
                    return FindOrCreateCustomerOutput(
                        customer=holder[0], customer_id=holder[0].Id, created=False
                    )
                continue
            customer = Customer.model_validate(data)
            return FindOrCreateCustomerOutput(
                customer=customer, customer_id=customer.Id, created=True
            )
        assert last is not None
        last.hint = (
            f"Every display name tried ({', '.join(candidates)}) belongs to another customer, "
            "vendor or employee; pass a unique `display_name`."
        )
        raise last


class CreateInvoice(Action[CreateInvoiceInput, Invoice]):
    name = "create_invoice"
    description = "Create an invoice for a customer; requestid makes it idempotent."
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = CreateInvoiceInput
    Output = Invoice

    async def run(
        self, session: QuickBooksSession, input: CreateInvoiceInput, call: CallContext
    ) -> Invoice:
        lines = []
        for line in input.lines:
            item_id = line.item_id or await session.item_id(session.settings.default_item)
            lines.append(_line(line, item_id))
        body: dict[str, Any] = {"CustomerRef": {"value": input.customer_id}, "Line": lines}
        optional = {
            "DocNumber": input.doc_number,
            "PrivateNote": input.private_note,
            "CustomerMemo": {"value": input.memo} if input.memo else None,
            "CurrencyRef": {"value": input.currency} if input.currency else None,
            "BillEmail": {"Address": input.bill_email} if input.bill_email else None,
            "DueDate": input.due_date.isoformat() if input.due_date else None,
            "TxnDate": input.txn_date.isoformat() if input.txn_date else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        data = await session.write(
            "invoice", body, request_id(call.idempotency_key), entity="Invoice"
        )
        return Invoice.model_validate(data)

    def simulate(self, input: CreateInvoiceInput, call: CallContext) -> Invoice:
        total = sum((_cents(line.amount) for line in input.lines), Decimal(0))
        return Invoice(
            Id=f"dryrun-{call.idempotency_key[-8:]}",
            DocNumber=input.doc_number,
            TotalAmt=float(total),
            Balance=float(total),
            CustomerRef=Ref(value=input.customer_id),
            EmailStatus="NotSet",
            BillEmail=EmailAddress(Address=input.bill_email) if input.bill_email else None,
        )


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _line(line: InvoiceLine, item_id: str) -> dict[str, Any]:
    amount = _cents(line.amount)
    detail: dict[str, Any] = {"ItemRef": {"value": item_id}}
    if line.quantity is not None:
        detail["Qty"] = float(line.quantity)
        detail["UnitPrice"] = float((amount / line.quantity).quantize(Decimal("0.0000001")))
    entry: dict[str, Any] = {
        "Amount": float(amount),
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": detail,
    }
    if line.description:
        entry["Description"] = line.description
    return entry


class SendInvoice(Action[SendInvoiceInput, Invoice]):
    name = "send_invoice"
    description = "Email an invoice from QuickBooks (EmailStatus becomes EmailSent)."
    effect = Effect.NOTIFY
    idempotency = Idempotency.HEADER
    Input = SendInvoiceInput
    Output = Invoice

    async def run(
        self, session: QuickBooksSession, input: SendInvoiceInput, call: CallContext
    ) -> Invoice:
        params = {"requestid": request_id(call.idempotency_key)}
        if input.to:
            params["sendTo"] = input.to
        path = f"invoice/{_segment(input.invoice_id)}/send"
        headers = {"Content-Type": "application/octet-stream"}
        _, data = await session.call("POST", path, params=params, content=b"", headers=headers)
        return Invoice.model_validate(entity_of(data, "Invoice", path))

    def simulate(self, input: SendInvoiceInput, call: CallContext) -> Invoice:
        to = EmailAddress(Address=input.to) if input.to else None
        return Invoice(Id=input.invoice_id, EmailStatus="EmailSent", BillEmail=to)


def _segment(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]+", value):
        raise ConnectorError(f"invalid QuickBooks Id {value!r}", kind=ErrorKind.VALIDATION)
    return value


class GetInvoice(Action[GetInvoiceInput, Invoice]):
    name = "get_invoice"
    description = "Read one invoice by Id."
    effect = Effect.READ
    Input = GetInvoiceInput
    Output = Invoice

    async def run(
        self, session: QuickBooksSession, input: GetInvoiceInput, call: CallContext
    ) -> Invoice:
        path = f"invoice/{_segment(input.invoice_id)}"
        _, data = await session.call("GET", path)
        return Invoice.model_validate(entity_of(data, "Invoice", path))


class Query(Action[QueryInput, QueryOutput]):
    name = "query"
    description = "Run a select statement and return every row of every page."
    effect = Effect.READ
    Input = QueryInput
    Output = QueryOutput

    async def run(
        self, session: QuickBooksSession, input: QueryInput, call: CallContext
    ) -> QueryOutput:
        rows = await session.query_all(input.query, input.page_size, input.limit)
        return QueryOutput(items=rows)


async def _open(settings: QuickBooksSettings, runtime: Runtime) -> QuickBooksSession:
    from flowkit.connectors.quickbooks.session import open_session

    return await open_session(settings, runtime)


async def _close(session: QuickBooksSession) -> None:
    from flowkit.connectors.quickbooks.session import close_session

    await close_session(session)


connector = Connector(
    "quickbooks",
    description="QuickBooks Online accounting: customers, invoices (create, email), queries.",
    settings=QuickBooksSettings,
    actions=[
        FindCustomer(),
        CreateCustomer(),
        FindOrCreateCustomer(),
        CreateInvoice(),
        SendInvoice(),
        GetInvoice(),
        Query(),
    ],
    open=_open,
    close=_close,
    docs_url=DOCS_URL,
)
