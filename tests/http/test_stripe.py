"""The stripe connector against localstripe (a real Stripe fake), the contract-faithful
Stripe sandbox (which honours Idempotency-Key) and MockTransport fault cases."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from flowkit.connectors.base import CallContext, Change, Runtime
from flowkit.connectors.stripe import (
    StripeSession,
    StripeSettings,
    connector,
    form_pairs,
    make_client,
)
from flowkit.errors import ConnectorError, ErrorKind
from flowkit.sandbox.stripe import DEFAULT_API_KEY, StripeSandbox

KEY = "sk_test_flowkit_localstripe"


def call(key: str = "fk-test-key") -> CallContext:
    return CallContext(idempotency_key=key)


async def open_session(url: str, runtime: Runtime, key: str = KEY, **extra: Any) -> StripeSession:
    settings = StripeSettings.model_validate({"api_key": key, "base_url": url, **extra})
    session: StripeSession = await connector.open(settings, runtime)
    return session


def admin(url: str, key: str = KEY) -> httpx.Client:
    """A plain synchronous client to arrange data on a server (not the code under test)."""
    auth = base64.b64encode(f"{key}:".encode()).decode()
    return httpx.Client(base_url=url, headers={"Authorization": f"Basic {auth}"})


def create(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.post(
        path,
        content=httpx.QueryParams(form_pairs(params)).__str__(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def run(action_name: str, session: Any, /, **values: Any) -> Any:
    action = connector.actions[action_name]
    return await action.run(session, action.Input.model_validate(values), call())


# localstripe ---------------------------------------------------------------------------------


async def test_list_charges_paginates_and_moves_the_cursor(localstripe: str, runtime: Any) -> None:
    with admin(localstripe) as c:
        customer = create(c, "/v1/customers", email="ada@example.com", name="Ada")
        made = [
            create(
                c,
                "/v1/charges",
                amount=1000 + i,
                currency="usd",
                source="pm_card_visa",
                customer=customer["id"],
            )
            for i in range(23)
        ]
    session = await open_session(localstripe, runtime)
    try:
        first = await run("list_charges", session, limit=5, status="succeeded")
        assert sorted(ch.id for ch in first.items) == sorted(ch["id"] for ch in made)
        newest = max(ch["created"] for ch in made)
        assert first.cursor == str(newest)
        item = next(ch for ch in first.items if ch.id == made[0]["id"])
        assert item.amount == 1000 and item.currency == "usd" and item.paid is True
        assert item.customer == customer["id"]

        # a later poll re-reads the cursor's own second (deduplicated downstream) and sees the new
        with admin(localstripe) as c:
            late = create(c, "/v1/charges", amount=4242, currency="eur", source="pm_card_visa")
        second = await run("list_charges", session, cursor=first.cursor, limit=5)
        ids = {ch.id for ch in second.items}
        assert late["id"] in ids
        assert ids <= {ch["id"] for ch in made} | {late["id"]}
        assert all(ch.created >= newest for ch in second.items)
        assert second.cursor == str(late["created"])
        # nothing new: the cursor stays
        third = await run("list_charges", session, cursor=second.cursor)
        assert late["id"] in {ch.id for ch in third.items}
        assert all(ch.created >= int(second.cursor) for ch in third.items)
        assert third.cursor == second.cursor
    finally:
        await connector.close(session)


async def test_charge_customer_expansion_and_lookups(localstripe: str, runtime: Any) -> None:
    with admin(localstripe) as c:
        customer = create(
            c,
            "/v1/customers",
            email="ben@example.com",
            name="Ben Okafor",
            metadata={"tier": "gold"},
        )
        other = create(c, "/v1/customers", email="carla@example.com")
        charge = create(
            c,
            "/v1/charges",
            amount=2599,
            currency="usd",
            source="pm_card_visa",
            customer=customer["id"],
            description="Order 1001",
        )
    session = await open_session(localstripe, runtime)
    try:
        listed = await run("list_charges", session, expand_customer=True)
        assert listed.items[0].customer == customer["id"]
        assert listed.items[0].customer_object.email == "ben@example.com"

        got = await run("get_charge", session, id=charge["id"])
        assert (got.id, got.amount, got.description) == (charge["id"], 2599, "Order 1001")

        cust = await run("get_customer", session, id=customer["id"])
        assert (cust.email, cust.name, cust.metadata) == (
            "ben@example.com",
            "Ben Okafor",
            {"tier": "gold"},
        )

        everyone = await run("list_customers", session, limit=1)
        assert {c.id for c in everyone.items} == {customer["id"], other["id"]}
        by_email = await run("list_customers", session, email="carla@example.com")
        assert [c.id for c in by_email.items] == [other["id"]]

        created = await run(
            "create_customer",
            session,
            email="dev@example.com",
            name="Dev",
            metadata={"source": "flowkit"},
        )
        assert created.id.startswith("cus_") and created.metadata == {"source": "flowkit"}

        with pytest.raises(ConnectorError) as info:
            await run("get_customer", session, id="cus_doesnotexist")
        assert info.value.kind is ErrorKind.NOT_FOUND
        assert str(info.value).startswith("HTTP 404 from GET /v1/customers/cus_doesnotexist: ")
    finally:
        await connector.close(session)


async def test_metadata_update_plan_and_refund(localstripe: str, runtime: Any) -> None:
    with admin(localstripe) as c:
        charge = create(
            c,
            "/v1/charges",
            amount=5000,
            currency="usd",
            source="pm_card_visa",
            metadata={"order": "1001"},
        )
    session = await open_session(localstripe, runtime)
    action = connector.actions["update_charge_metadata"]
    try:
        payload = action.Input.model_validate(
            {"id": charge["id"], "metadata": {"invoiced": "inv_77", "order": "1001"}}
        )
        plan = await action.plan(session, payload, call())
        assert plan == [Change(charge["id"], "metadata.invoiced", None, "inv_77")]
        updated = await action.run(session, payload, call())
        assert updated.metadata == {"order": "1001", "invoiced": "inv_77"}
        assert await action.plan(session, payload, call()) == []

        refund = await run("create_refund", session, charge=charge["id"], amount=1200)
        assert (refund.amount, refund.charge) == (1200, charge["id"])
        after = await run("get_charge", session, id=charge["id"])
        assert after.amount_refunded == 1200 and after.refunded is False
    finally:
        await connector.close(session)


async def test_declined_card_keeps_stripe_message(localstripe: str, runtime: Any) -> None:
    session = await open_session(localstripe, runtime)
    try:
        with pytest.raises(ConnectorError) as info:
            await session.post(
                "/v1/payment_intents",
                {
                    "amount": 1000,
                    "currency": "usd",
                    "payment_method": "pm_card_chargeCustomerFail",
                    "confirm": True,
                },
                "fk-decline",
            )
        err = info.value
        assert err.status == 402
        assert err.kind is ErrorKind.PERMANENT
        assert str(err).startswith("HTTP 402 from POST /v1/payment_intents: ")
        assert "declined" in str(err)
    finally:
        await connector.close(session)


async def test_wrong_key_is_auth_and_never_shows_the_key(localstripe: str, runtime: Any) -> None:
    session = await open_session(localstripe, runtime, key="pk_not_a_secret_key")
    try:
        with pytest.raises(ConnectorError) as info:
            await run("list_customers", session)
        assert info.value.kind is ErrorKind.AUTH
        assert "pk_not_a_secret_key" not in str(info.value)
        assert "pk_not_a_secret_key" in runtime.secrets
    finally:
        await connector.close(session)


async def test_payment_intents_poll(localstripe: str, runtime: Any) -> None:
    with admin(localstripe) as c:
        intents = [
            create(
                c,
                "/v1/payment_intents",
                amount=700 + i,
                currency="usd",
                payment_method="pm_card_visa",
                confirm="true",
            )
            for i in range(3)
        ]
    session = await open_session(localstripe, runtime)
    try:
        # localstripe rejects filters on this list (real Stripe accepts created[gt])
        out = await run(
            "list_payment_intents", session, limit=2, status="succeeded", created_filter=False
        )
        assert sorted(p.id for p in out.items) == sorted(p["id"] for p in intents)
        again = await run("list_payment_intents", session, cursor=out.cursor, created_filter=False)
        assert {p.id for p in again.items} <= {p["id"] for p in intents}
        assert again.cursor == out.cursor
    finally:
        await connector.close(session)


# the Stripe sandbox honours Idempotency-Key (as Stripe does; localstripe ignores it) -----------


@pytest.fixture
def sandbox(serve: Any) -> tuple[StripeSandbox, str]:
    stripe = StripeSandbox()
    return stripe, serve(stripe.app).url


async def test_refund_repeated_with_same_key_happens_once(
    sandbox: tuple[StripeSandbox, str], runtime: Any
) -> None:
    stripe, url = sandbox
    charge = stripe.add_charge(3000)
    session = await open_session(url, runtime, key=DEFAULT_API_KEY)
    action = connector.actions["create_refund"]
    payload = action.Input.model_validate({"charge": charge["id"], "amount": 500})
    try:
        # the first attempt is applied but its answer is lost: an unknown outcome
        stripe.faults.drop_after_apply_next = 1
        with pytest.raises(ConnectorError) as info:
            await action.run(session, payload, call("fk-refund-1"))
        assert info.value.maybe_sent is True and info.value.kind.retryable
        # the engine repeats it with the same key: Stripe replays the saved result
        first = await action.run(session, payload, call("fk-refund-1"))
        again = await action.run(session, payload, call("fk-refund-1"))
        assert first.id == again.id
        assert len(stripe.refunds) == 1

        # same key, other parameters -> a conflict with Stripe's explanation
        other = action.Input.model_validate({"charge": charge["id"], "amount": 600})
        with pytest.raises(ConnectorError) as info:
            await action.run(session, other, call("fk-refund-1"))
        assert info.value.kind is ErrorKind.CONFLICT
        assert "Idempotency-Key reused with different parameters" in str(info.value)
        assert len(stripe.refunds) == 1
    finally:
        await connector.close(session)


async def test_every_write_sends_the_idempotency_key(runtime: Any) -> None:
    seen: list[httpx.Request] = []
    objects = {
        "/v1/charges/ch_1": {
            "id": "ch_1",
            "amount": 1,
            "currency": "usd",
            "status": "succeeded",
            "created": 1700000000,
        },
        "/v1/refunds": {"id": "re_1", "amount": 1, "currency": "usd", "charge": "ch_1"},
        "/v1/customers": {"id": "cus_1"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=objects[request.url.path])

    settings = StripeSettings(api_key="sk_test_x", api_version="2024-06-20")
    session = StripeSession(make_client(settings, runtime, httpx.MockTransport(handler)))
    writes = [
        ("update_charge_metadata", {"id": "ch_1", "metadata": {"invoiced": "yes", "old": None}}),
        ("create_refund", {"charge": "ch_1", "reason": "requested_by_customer"}),
        ("create_customer", {"email": "x@example.com", "metadata": {"n": 1}}),
    ]
    for index, (name, values) in enumerate(writes):
        action = connector.actions[name]
        await action.run(session, action.Input.model_validate(values), call(f"fk-{index}"))
    assert [r.headers["Idempotency-Key"] for r in seen] == ["fk-0", "fk-1", "fk-2"]
    assert all(r.headers["Stripe-Version"] == "2024-06-20" for r in seen)
    assert all(r.headers["Content-Type"] == "application/x-www-form-urlencoded" for r in seen)
    assert parse_qsl(seen[0].content.decode(), keep_blank_values=True) == [
        ("metadata[invoiced]", "yes"),
        ("metadata[old]", ""),
    ]
    assert parse_qsl(seen[2].content.decode()) == [("email", "x@example.com"), ("metadata[n]", "1")]
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"sk_test_x:").decode()


def test_form_pairs_nesting() -> None:
    assert form_pairs(
        {
            "a": 1,
            "flag": True,
            "expand": ["data.customer", "x"],
            "items": [{"price": "p1", "qty": 2}],
            "metadata": {"k": "v", "gone": None},
            "created": {"gt": 5},
        }
    ) == [
        ("a", "1"),
        ("flag", "true"),
        ("expand[]", "data.customer"),
        ("expand[]", "x"),
        ("items[0][price]", "p1"),
        ("items[0][qty]", "2"),
        ("metadata[k]", "v"),
        ("metadata[gone]", ""),
        ("created[gt]", "5"),
    ]


# faults (MockTransport) ---------------------------------------------------------------------------


def mock_session(
    runtime: Any, handler: Callable[[httpx.Request], httpx.Response], timeout: float = 30.0
) -> StripeSession:
    settings = StripeSettings(api_key="sk_test_x", timeout=timeout)
    return StripeSession(make_client(settings, runtime, httpx.MockTransport(handler)))


def error_body(etype: str, message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": etype, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


@pytest.mark.parametrize(
    ("response", "kind", "retry_after", "text"),
    [
        (
            httpx.Response(
                429,
                headers={"Retry-After": "2"},
                json=error_body("invalid_request_error", "Too many requests", "rate_limit"),
            ),
            ErrorKind.RATE_LIMITED,
            2.0,
            "Too many requests [rate_limit]",
        ),
        (
            httpx.Response(503, json=error_body("api_error", "Try again later")),
            ErrorKind.TRANSIENT,
            None,
            "Try again later",
        ),
        (
            httpx.Response(
                409,
                headers={"Stripe-Should-Retry": "true"},
                json=error_body("invalid_request_error", "in use", "idempotency_key_in_use"),
            ),
            ErrorKind.TRANSIENT,
            None,
            "in use [idempotency_key_in_use]",
        ),
        (
            httpx.Response(
                500,
                headers={"Stripe-Should-Retry": "false"},
                json=error_body("api_error", "do not retry"),
            ),
            ErrorKind.PERMANENT,
            None,
            "do not retry",
        ),
        (
            httpx.Response(
                402,
                json={
                    "error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "insufficient_funds",
                        "message": "Your card has insufficient funds.",
                    }
                },
            ),
            ErrorKind.PERMANENT,
            None,
            "Your card has insufficient funds. [card_declined, insufficient_funds]",
        ),
        (
            httpx.Response(400, json=error_body("invalid_request_error", "Missing amount")),
            ErrorKind.VALIDATION,
            None,
            "Missing amount",
        ),
        (
            httpx.Response(502, text="<html>bad gateway</html>"),
            ErrorKind.TRANSIENT,
            None,
            "<html>bad gateway</html>",
        ),
    ],
)
async def test_error_classification(
    runtime: Any, response: httpx.Response, kind: ErrorKind, retry_after: float | None, text: str
) -> None:
    session = mock_session(runtime, lambda r: response)
    with pytest.raises(ConnectorError) as info:
        await run("create_customer", session, email="a@example.com")
    assert info.value.kind is kind
    assert info.value.retry_after == retry_after
    assert str(info.value) == f"HTTP {response.status_code} from POST /v1/customers: {text}"


async def test_malformed_json_and_timeout(runtime: Any, serve: Any) -> None:
    session = mock_session(runtime, lambda r: httpx.Response(200, text='{"id": "ch_'))
    with pytest.raises(ConnectorError) as info:
        await run("get_charge", session, id="ch_1")
    assert info.value.kind is ErrorKind.PERMANENT
    assert str(info.value).startswith("malformed JSON from GET /v1/charges/ch_1: ")

    stripe = StripeSandbox()
    url = serve(stripe.app).url
    stripe.faults.latency_ms = 400
    real = await open_session(url, runtime, key=DEFAULT_API_KEY, timeout=0.1)
    try:
        with pytest.raises(ConnectorError) as info:
            await run("list_customers", real)
        assert info.value.kind is ErrorKind.TIMEOUT and info.value.maybe_sent is True
    finally:
        stripe.faults.latency_ms = 0
        await connector.close(real)


async def test_sandbox_faults_classified(serve: Any, runtime: Any) -> None:
    stripe = StripeSandbox()
    url = serve(stripe.app).url
    charge = stripe.add_charge(100)
    session = await open_session(url, runtime, key=DEFAULT_API_KEY)
    try:
        stripe.fail_next(1, status=429, retry_after=4)
        with pytest.raises(ConnectorError) as info:
            await run("get_charge", session, id=charge["id"])
        assert (info.value.kind, info.value.retry_after) == (ErrorKind.RATE_LIMITED, 4.0)
        stripe.fail_next(1, status=503, retry_after=None)
        with pytest.raises(ConnectorError) as info:
            await run("get_charge", session, id=charge["id"])
        assert info.value.kind is ErrorKind.TRANSIENT
        stripe.faults.malformed_next = 1
        with pytest.raises(ConnectorError, match="malformed JSON"):
            await run("get_charge", session, id=charge["id"])
        assert (await run("get_charge", session, id=charge["id"])).id == charge["id"]
    finally:
        await connector.close(session)


async def test_status_filter_and_pending_hold_back_the_cursor(runtime: Any) -> None:
    charges = [
        {
            "id": "ch_a",
            "amount": 1,
            "currency": "usd",
            "status": "succeeded",
            "created": 1700000100,
        },
        {"id": "ch_b", "amount": 1, "currency": "usd", "status": "pending", "created": 1700000200},
        {
            "id": "ch_c",
            "amount": 1,
            "currency": "usd",
            "status": "succeeded",
            "created": 1700000300,
        },
        {"id": "ch_d", "amount": 1, "currency": "usd", "status": "failed", "created": 1700000400},
    ]
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(str(request.url.query, "ascii"))
        gt = int(request.url.params.get("created[gt]", "0"))
        data = [c for c in reversed(charges) if c["created"] > gt]  # newest first, like Stripe
        return httpx.Response(200, json={"object": "list", "data": data, "has_more": False})

    session = mock_session(runtime, handler)
    out = await run("list_charges", session, cursor=1700000050, status="succeeded")
    assert [c.id for c in out.items] == ["ch_a", "ch_c"]  # oldest first
    assert out.cursor == "1700000200"  # held at the pending charge
    assert "created%5Bgt%5D=1700000049" in queries[0]


async def test_pagination_guard(runtime: Any) -> None:
    page = {"object": "list", "has_more": True, "data": [{"id": "cus_1"}]}
    session = mock_session(runtime, lambda r: httpx.Response(200, json=page))
    with pytest.raises(ConnectorError, match="pagination did not advance"):
        await run("list_customers", session)


async def test_bad_cursor_and_inputs(runtime: Any) -> None:
    session = mock_session(runtime, lambda r: httpx.Response(200, json={}))
    with pytest.raises(ConnectorError, match="not a unix time") as info:
        await run("list_charges", session, cursor="yesterday")
    assert info.value.kind is ErrorKind.VALIDATION
    with pytest.raises(ValueError, match="exactly one of"):
        connector.actions["create_refund"].Input.model_validate({"amount": 5})


async def test_dry_run_outputs_are_valid() -> None:
    for action in connector.actions.values():
        out = action.simulate(action.Input.model_construct(), call("fk-dry"))
        assert isinstance(out, action.Output)


async def test_concurrent_reads_share_one_session(
    sandbox: tuple[StripeSandbox, str], runtime: Any
) -> None:
    stripe, url = sandbox
    ids = [stripe.add_charge(100 + i)["id"] for i in range(20)]
    session = await open_session(url, runtime, key=DEFAULT_API_KEY)
    try:
        got = await asyncio.gather(*(run("get_charge", session, id=i) for i in ids))
        assert [c.id for c in got] == ids
    finally:
        await connector.close(session)


async def test_unexpected_object_shape_is_a_clear_error(runtime: Any) -> None:
    session = mock_session(runtime, lambda r: httpx.Response(200, json={"id": "ch_1"}))
    with pytest.raises(ConnectorError) as info:
        await run("get_charge", session, id="ch_1")
    assert info.value.kind is ErrorKind.PERMANENT
    assert str(info.value).startswith("unexpected Charge from GET /v1/charges/{id}: amount: ")
