"""Settings, API objects and action inputs and outputs of the `stripe` connector (pydantic
models). Importing them needs no HTTP layer: `flowkit validate` checks recipes against them.
Objects follow https://docs.stripe.com/api (charges, payment_intents, customers, refunds)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator

from flowkit.connectors.base import Input, Output
from flowkit.connectors.http_options import TransportSettings


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


# action inputs and outputs ------------------------------------------------------------------


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


class GetChargeInput(Input):
    id: str = Field(min_length=1, description="Charge id (`ch_...`).")
    expand_customer: bool = False


class GetCustomerInput(Input):
    id: str = Field(min_length=1, description="Customer id (`cus_...`).")


class ListCustomersInput(Input):
    email: str | None = Field(None, description="Only customers with this exact email.")
    limit: int = Field(100, ge=1, le=100, description="Page size.")
    max_pages: int = Field(100, ge=1, description="Stop with an error after this many pages.")


class ListCustomersOutput(Output):
    items: list[Customer]


MetadataValue = str | int | float | bool | None


class UpdateChargeMetadataInput(Input):
    id: str = Field(min_length=1, description="Charge id (`ch_...`).")
    metadata: dict[str, MetadataValue] = Field(
        description="Keys to set (merged into existing metadata); a null value removes a key."
    )


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


class CreateCustomerInput(Input):
    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
