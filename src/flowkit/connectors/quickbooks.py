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

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from flowkit.connectors.auth import OAuth2RefreshToken, reveal
from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
    Input,
    Output,
    Runtime,
)
from flowkit.connectors.http_client import HttpClient, default_error_message, paginate_pages

__all__ = ["QuickBooksSession", "QuickBooksSettings", "connector"]

PRODUCTION_URL = "https://quickbooks.api.intuit.com"
SANDBOX_URL = "https://sandbox-quickbooks.api.intuit.com"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
DOCS_URL = "https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/invoice"
MAX_REQUEST_ID = 50  # QuickBooks accepts requestid values of up to 50 characters
AUTH_HINT = (
    "Reconnect the app to QuickBooks (Intuit's OAuth 2.0 Playground issues a new refresh token) "
    "and set the connection's `refresh_token` secret to it."
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONFLICT_CODES = {"6240", "6140", "5010"}  # duplicate name, duplicate doc number, stale object

Email = Annotated[str, Field(pattern=_EMAIL.pattern, max_length=100)]


class QuickBooksSettings(BaseModel):
    """Connection settings: the company (realm), the app's OAuth2 client and a refresh token."""

    model_config = ConfigDict(extra="forbid")

    realm_id: str = Field(pattern=r"^\d+$", description="The company (realm) ID, digits only.")
    client_id: str = Field(min_length=1, description="The app's OAuth2 client ID.")
    client_secret: SecretStr = Field(description="The app's OAuth2 client secret.")
    refresh_token: SecretStr = Field(
        description="An OAuth2 refresh token; rotated ones are kept in the state store."
    )
    environment: Literal["production", "sandbox"] = Field(
        "production", description="Which Intuit API host to use when `base_url` is not set."
    )
    base_url: str | None = Field(None, description="Override the API host (tests, proxies).")
    token_url: str = Field(TOKEN_URL, description="Intuit's OAuth2 token endpoint.")
    minor_version: int = Field(75, ge=1, description="The `minorversion` sent with every call.")
    default_item: str = Field(
        "Services", min_length=1, description="Name of the item used for lines without item_id."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for each answer.")


# ------------------------------------------------------------------------------- models
class EmailAddress(Output):
    Address: str | None = None


class Ref(Output):
    value: str
    name: str | None = None


class Customer(Output):
    """A QuickBooks Customer (all fields QuickBooks returns are kept)."""

    Id: str
    DisplayName: str
    PrimaryEmailAddr: EmailAddress | None = None
    Active: bool = True
    SyncToken: str = "0"


class Invoice(Output):
    """A QuickBooks Invoice (all fields QuickBooks returns are kept)."""

    Id: str
    DocNumber: str | None = None
    TotalAmt: float = 0
    Balance: float = 0
    CustomerRef: Ref | None = None
    EmailStatus: str | None = None
    BillEmail: EmailAddress | None = None
    TxnDate: str | None = None
    DueDate: str | None = None
    CurrencyRef: Ref | None = None
    Line: list[dict[str, Any]] = Field(default_factory=list)


class FindCustomerInput(Input):
    email: Email = Field(description="The customer's primary email address.")


class FindCustomerOutput(Output):
    found: bool = Field(description="Whether an active customer has this email.")
    customer: Customer | None = Field(None, description="The oldest match, if any.")


class CustomerFields(Input):
    display_name: str | None = Field(
        None, min_length=1, max_length=500, description="Unique display name."
    )
    given_name: str | None = Field(None, max_length=100)
    family_name: str | None = Field(None, max_length=100)
    company_name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=30)

    def body(self, email: str | None, display_name: str) -> dict[str, Any]:
        body: dict[str, Any] = {"DisplayName": display_name}
        for key, value in (("GivenName", self.given_name), ("FamilyName", self.family_name),
                           ("CompanyName", self.company_name)):  # fmt: skip
            if value:
                body[key] = value
        if email:
            body["PrimaryEmailAddr"] = {"Address": email}
        if self.phone:
            body["PrimaryPhone"] = {"FreeFormNumber": self.phone}
        return body

    def default_name(self, email: str | None) -> str:
        names = " ".join(n for n in (self.given_name, self.family_name) if n)
        return self.display_name or names or self.company_name or email or ""


class CreateCustomerInput(CustomerFields):
    email: Email | None = Field(None, description="Primary email address.")


class FindOrCreateCustomerInput(CustomerFields):
    email: Email = Field(description="Primary email address: the customer's identity here.")


class FindOrCreateCustomerOutput(Output):
    customer: Customer
    customer_id: str = Field(description="The customer's Id (found or created).")
    created: bool = Field(description="True when this call created the customer.")


class InvoiceLine(Input):
    amount: Decimal = Field(ge=0, description="Line total in the invoice currency.")
    description: str | None = Field(None, max_length=4000)
    item_id: str | None = Field(None, description="Item (product/service) Id; default item else.")
    quantity: Decimal | None = Field(None, gt=0, description="Quantity; unit price = amount/qty.")


class CreateInvoiceInput(Input):
    customer_id: str = Field(min_length=1, description="The Customer Id to bill.")
    lines: list[InvoiceLine] = Field(min_length=1, description="At least one line.")
    doc_number: str | None = Field(None, max_length=21, description="Invoice number.")
    private_note: str | None = Field(None, max_length=4000, description="Internal note.")
    memo: str | None = Field(None, max_length=1000, description="Message shown to the customer.")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO currency code.")
    bill_email: Email | None = Field(None, description="Where QuickBooks emails the invoice.")
    due_date: date | None = None
    txn_date: date | None = None


class SendInvoiceInput(Input):
    invoice_id: str = Field(min_length=1)
    to: Email | None = Field(None, description="Recipient; the invoice's BillEmail if omitted.")


class GetInvoiceInput(Input):
    invoice_id: str = Field(min_length=1)


class QueryInput(Input):
    query: str = Field(description="A `select ... from Entity [where ...] [orderby ...]`.")
    page_size: int = Field(100, ge=1, le=1000, description="MAXRESULTS of each page.")
    limit: int | None = Field(None, ge=1, description="Stop after this many rows.")

    @field_validator("query")
    @classmethod
    def _select_only(cls, value: str) -> str:
        text = value.strip()
        if not re.match(r"(?i)^select\s", text):
            raise ValueError("must be a select statement")
        if re.search(r"(?i)\b(startposition|maxresults)\b", text):
            raise ValueError("must not contain STARTPOSITION or MAXRESULTS (paging is automatic)")
        return text


class QueryOutput(Output):
    items: list[dict[str, Any]] = Field(description="Every row of every page.")


# ------------------------------------------------------------------------------ session
def _faults(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    """(fault type, errors) of a Fault body in either letter case, or ("", [])."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return "", []
    if not isinstance(body, dict):
        return "", []
    fault = body.get("Fault") or body.get("fault")
    if not isinstance(fault, dict):
        return "", []
    errors = fault.get("Error") or fault.get("error") or []
    errors = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    return str(fault.get("type", "")), errors


def _get(error: dict[str, Any], key: str) -> str:
    value = error.get(key, error.get(key.lower()))
    return "" if value is None else str(value)


def fault_message(response: httpx.Response) -> str:
    """QuickBooks' own words: `Message: Detail (code N)` for each error of a Fault."""
    _, errors = _faults(response)
    parts = []
    for error in errors:
        message, detail, code = _get(error, "Message"), _get(error, "Detail"), _get(error, "code")
        text = message if not detail or detail == message else f"{message}: {detail}"
        parts.append(f"{text} (code {code})" if code else text)
    return "; ".join(p for p in parts if p) or default_error_message(response)


def fault_kind(response: httpx.Response, kind: ErrorKind) -> ErrorKind:
    """Refine the status-based kind with the Fault's type and codes."""
    fault_type, errors = _faults(response)
    codes = {_get(e, "code").lstrip("0") for e in errors}
    status = response.status_code
    if status == 429 or "3001" in codes:
        return ErrorKind.RATE_LIMITED
    if status >= 500:
        return ErrorKind.TRANSIENT
    if status in (401, 403) or fault_type.upper().startswith(("AUTHENTICATION", "AUTHORIZATION")):
        return ErrorKind.AUTH
    if codes & _CONFLICT_CODES:
        return ErrorKind.CONFLICT
    if "610" in codes:
        return ErrorKind.NOT_FOUND
    if fault_type == "ValidationFault":
        return ErrorKind.VALIDATION
    return kind


def request_id(key: str, variant: str = "") -> str:
    """A requestid for `key` (plus a variant for follow-up writes of one step), <= 50 chars."""
    raw = f"{key}.{variant}" if variant else key
    if len(raw) <= MAX_REQUEST_ID and re.fullmatch(r"[A-Za-z0-9._:-]+", raw):
        return raw
    return "fk-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def quote(value: str) -> str:
    """A string literal for the QuickBooks query language (backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class QuickBooksSession:
    """One connection's client: builds URLs under the realm and turns Faults into errors."""

    client: HttpClient
    settings: QuickBooksSettings
    auth: OAuth2RefreshToken
    _items: dict[str, str] = field(default_factory=dict)  # item name -> Id

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """Send one request; returns the response and its JSON object, or raises."""
        query = {"minorversion": str(self.settings.minor_version), **(params or {})}
        try:
            response = await self.client.request(
                method, path, params=query, json=json_body, content=content, headers=headers,
                check=False,
            )  # fmt: skip
        except ConnectorError as exc:
            raise _with_hint(exc) from None
        if not response.is_success or _faults(response)[1]:  # a Fault may come with a 200
            raise _with_hint(self.client.error_for(response))
        body = self.client.json(response)
        if not isinstance(body, dict):
            raise ConnectorError(
                f"unexpected answer from {method} {httpx.URL(path).path}: not a JSON object",
                kind=ErrorKind.PERMANENT,
                maybe_sent=method != "GET",
            )
        return response, body

    async def write(self, path: str, body: Any, key: str, *, entity: str) -> dict[str, Any]:
        _, data = await self.call("POST", path, json_body=body, params={"requestid": key})
        return _entity(data, entity, path)

    async def query_page(self, statement: str) -> list[dict[str, Any]]:
        _, data = await self.call("GET", "query", params={"query": statement})
        result = data.get("QueryResponse")
        if not isinstance(result, dict):
            raise ConnectorError("QuickBooks answered a query without QueryResponse")
        rows = next((v for k, v in result.items() if isinstance(v, list)), [])
        return [r for r in rows if isinstance(r, dict)]

    async def query_all(self, statement: str, page_size: int, limit: int | None) -> list[Any]:
        async def fetch(page: int) -> tuple[list[Any], bool]:
            start = (page - 1) * page_size + 1
            rows = await self.query_page(
                f"{statement} STARTPOSITION {start} MAXRESULTS {page_size}"
            )
            return rows, len(rows) == page_size

        items: list[Any] = []
        async for row in paginate_pages(fetch):
            items.append(row)
            if limit is not None and len(items) >= limit:
                break
        return items

    async def customers_by(self, condition: str) -> list[Customer]:
        rows = await self.query_page(f"select * from Customer where {condition}")
        customers = [Customer.model_validate(r) for r in rows]
        return sorted(customers, key=lambda c: (len(c.Id), c.Id))  # oldest (lowest Id) first

    async def item_id(self, name: str) -> str:
        if name not in self._items:
            rows = await self.query_page(f"select * from Item where Name = {quote(name)}")
            if not rows:
                raise ConnectorError(
                    f"QuickBooks has no active item named {name!r} for invoice lines",
                    kind=ErrorKind.VALIDATION,
                    hint="Give each line an `item_id`, or set the connection's `default_item` "
                    "to the name of an existing product or service.",
                )
            self._items[name] = str(rows[0]["Id"])
        return self._items[name]


def _with_hint(exc: ConnectorError) -> ConnectorError:
    if exc.kind is ErrorKind.AUTH and exc.hint is None:
        exc.hint = AUTH_HINT
    return exc


def _entity(data: dict[str, Any], entity: str, path: str) -> dict[str, Any]:
    found = data.get(entity)
    if not isinstance(found, dict):
        raise ConnectorError(
            f"QuickBooks answered {path} without {entity}",
            kind=ErrorKind.PERMANENT,
            maybe_sent=True,
        )
    return found


async def _open(settings: QuickBooksSettings, runtime: Runtime) -> QuickBooksSession:
    host = settings.base_url or (
        SANDBOX_URL if settings.environment == "sandbox" else PRODUCTION_URL
    )
    configured = reveal(settings.refresh_token)
    fingerprint = hashlib.sha256(configured.encode()).hexdigest()[:16]
    auth = OAuth2RefreshToken(
        settings.token_url,
        settings.client_id,
        settings.client_secret,
        settings.refresh_token,
        kv=runtime.kv,
        kv_key=f"quickbooks.{settings.realm_id}.refresh_token.{fingerprint}",
    )
    client = HttpClient(
        f"{host.rstrip('/')}/v3/company/{settings.realm_id}/",
        auth=auth,
        headers={"Accept": "application/json"},
        timeout=settings.timeout,
        error_message=fault_message,
        classify=fault_kind,
        runtime=runtime,
        name="quickbooks",
    )
    return QuickBooksSession(client=client, settings=settings, auth=auth)


async def _close(session: QuickBooksSession) -> None:
    await session.client.aclose()


# ------------------------------------------------------------------------------ actions
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
                if exc.kind is not ErrorKind.CONFLICT or "6240" not in exc.message:
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
        return Invoice.model_validate(_entity(data, "Invoice", path))

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
        return Invoice.model_validate(_entity(data, "Invoice", path))


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
