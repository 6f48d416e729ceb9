"""A `demo` connector with known inputs, outputs and settings, and helpers to check recipes."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from flowkit.connectors.base import Action, Connector, Effect, Idempotency, Input, Output
from flowkit.connectors.registry import Registry
from flowkit.errors import Problem
from flowkit.recipe.loader import check_source


class DemoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: SecretStr
    base_url: str = "https://demo.invalid"
    timeout: float = 10.0


class Line(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    id: str
    email: str
    total: float
    lines: list[Line] = Field(default_factory=list)


class ListInput(Input):
    status: Literal["paid", "open"] = "paid"
    cursor: int | None = None
    limit: int = Field(10, ge=1, le=100)


class ListOutput(Output):
    items: list[Order]
    next: int | None = None


class ListOrders(Action[ListInput, ListOutput]):
    name = "list_orders"
    effect = Effect.READ
    Input = ListInput
    Output = ListOutput


class InvoiceInput(Input):
    customer: str
    amount: float = Field(gt=0)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    lines: list[Line] = Field(default_factory=list)


class Invoice(BaseModel):  # a closed output model (extra fields ignored)
    id: str
    number: int


class CreateInvoice(Action[InvoiceInput, Invoice]):
    name = "create_invoice"
    effect = Effect.WRITE
    idempotency = Idempotency.HEADER
    Input = InvoiceInput
    Output = Invoice


class SendInput(Input):
    to: str
    subject: str
    body: str = ""


class Sent(Output):
    delivered: bool


class Send(Action[SendInput, Sent]):
    name = "send"
    effect = Effect.NOTIFY
    Input = SendInput
    Output = Sent


def demo_connector() -> Connector:
    return Connector(
        "demo",
        settings=DemoSettings,
        actions=[ListOrders(), CreateInvoice(), Send()],
    )


@pytest.fixture
def registry() -> Registry:
    return Registry(extra={"demo": demo_connector()})


@pytest.fixture(scope="module")
def module_registry() -> Registry:
    """The same, shared by a module's tests (connectors load once)."""
    return Registry(extra={"demo": demo_connector()})


Check = Callable[..., list[Problem]]


@pytest.fixture
def check(registry: Registry) -> Check:
    """check(yaml_text, **kw) -> problems, with the file named `r.yaml`."""

    def run(text: str, **kwargs: Any) -> list[Problem]:
        _, problems = check_source(
            textwrap.dedent(text).encode(), "r.yaml", registry=registry, **kwargs
        )
        return problems

    return run
