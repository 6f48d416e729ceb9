"""A fake `shop` connector with typed models (never reachable: fixtures must stand in for it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    ConnectorError,
    Effect,
    Idempotency,
    Input,
    Output,
)
from flowkit.connectors.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures"


class ShopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: SecretStr


class Order(BaseModel):
    id: str
    email: str
    total: float
    status: str = "completed"


class ListOrdersInput(Input):
    cursor: int | None = Field(None, ge=0)
    status: str = "completed"


class ListOrdersOutput(Output):
    items: list[Order]
    cursor: int | None


class GetCustomerInput(Input):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class GetCustomerOutput(Output):
    id: str
    email: str
    reviews: int = 0


class CreateInvoiceInput(Input):
    order_id: str
    customer_id: str
    amount: float = Field(gt=0)


class CreateInvoiceOutput(Output):
    id: str
    number: str


class SendEmailInput(Input):
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    subject: str


class SendEmailOutput(Output):
    message_id: str


class PostWebhookInput(Input):
    text: str


class PostWebhookOutput(Output):
    ok: bool


class _Unreachable(Action[Any, Any]):
    async def run(self, session: Any, input: Any, call: CallContext) -> Any:
        raise ConnectorError("the fake shop is never reachable: a fixture should answer")


def _action(name: str, effect: Effect, idem: Idempotency, inp: type, out: type) -> Action[Any, Any]:
    attrs = {"name": name, "effect": effect, "idempotency": idem, "Input": inp, "Output": out}
    return type(f"Shop_{name}", (_Unreachable,), attrs)()  # type: ignore[no-any-return]


shop = Connector(
    "shop",
    description="A fake shop for tests.",
    settings=ShopSettings,
    actions=[
        _action("list_orders", Effect.READ, Idempotency.NONE, ListOrdersInput, ListOrdersOutput),
        _action("get_customer", Effect.READ, Idempotency.NONE, GetCustomerInput, GetCustomerOutput),
        _action(
            "create_invoice",
            Effect.WRITE,
            Idempotency.HEADER,
            CreateInvoiceInput,
            CreateInvoiceOutput,
        ),
        _action("send_email", Effect.NOTIFY, Idempotency.NONE, SendEmailInput, SendEmailOutput),
        _action(
            "post_webhook", Effect.WRITE, Idempotency.NONE, PostWebhookInput, PostWebhookOutput
        ),
    ],
)


@pytest.fixture
def registry() -> Registry:
    return Registry(extra={"shop": shop})
