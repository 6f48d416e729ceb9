"""Settings, inputs and outputs of the `quickbooks` connector (pydantic models).

Output models keep every field QuickBooks returns (`extra="allow"`) and name the ones recipes
use most with QuickBooks' own spelling (`Id`, `DocNumber`, `TotalAmt`, ...). Input limits
follow the entity reference (DocNumber 21 characters, DisplayName 500, CustomerMemo 1000):
https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/invoice
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from flowkit.connectors.base import Input, Output
from flowkit.connectors.http_options import TransportSettings

PRODUCTION_URL = "https://quickbooks.api.intuit.com"
SANDBOX_URL = "https://sandbox-quickbooks.api.intuit.com"
TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"

Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=100)]


class QuickBooksSettings(TransportSettings):
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
