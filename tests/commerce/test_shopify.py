"""The shopify connector against the Shopify Admin GraphQL sandbox over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from flowkit.connectors.base import CallContext, Runtime
from flowkit.connectors.shopify import (
    ShopifyCostLimiter,
    ShopifySession,
    ShopifySettings,
    connector,
)
from flowkit.errors import ConnectorError, ErrorKind
from flowkit.sandbox.server import ServerHandle
from flowkit.sandbox.shopify import ShopifyCall, ShopifyServer

from .conftest import FakeClock, shop_settings

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class Sleeps:
    """Records the pacing waits instead of sleeping; moves the fake clock (server and client)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock: FakeClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
async def session(
    shop_handle: ServerHandle, runtime: Runtime, clock: FakeClock, sleeps: Sleeps
) -> AsyncIterator[ShopifySession]:
    opened: ShopifySession = await connector.open(shop_settings(shop_handle.url), runtime)
    opened.limiter = ShopifyCostLimiter(clock=clock, sleep=sleeps)
    yield opened
    await connector.close(opened)


async def run(session: ShopifySession, action: str, call: CallContext, **values: Any) -> Any:
    spec = connector.actions[action]
    return await spec.run(session, spec.Input.model_validate(values), call)


def fulfilled_order(shop: ShopifyServer, email: str, at: datetime, sku: str = "SKU-1") -> str:
    if shop.available(sku) is None:
        shop.add_variant(sku, 5)
    order = shop.add_order(email=email, items=[(sku, 2)], created=at - timedelta(hours=1))
    shop.fulfill_order(order["id"], at)
    return str(order["id"])


# ------------------------------------------------------------------ settings and auth
def test_settings_accept_base_url_as_an_alias_and_a_bare_domain() -> None:
    settings = ShopifySettings.model_validate(
        {"base_url": "my-shop.myshopify.com/", "access_token": "shpat_x", "location_id": "7"}
    )
    assert settings.shop_url == "https://my-shop.myshopify.com"
    assert settings.location_id == "gid://shopify/Location/7"
    with pytest.raises(ValidationError, match="api_version"):
        ShopifySettings.model_validate(
            {"shop_url": "https://a.myshopify.com", "access_token": "x", "api_version": "latest"}
        )


async def test_bad_token_is_an_auth_error_with_shopifys_message(
    shop_handle: ServerHandle, runtime: Runtime, call: CallContext
) -> None:
    session = await connector.open(
        shop_settings(shop_handle.url, access_token="shpat_wrong"), runtime
    )
    try:
        with pytest.raises(ConnectorError) as info:
            await run(session, "get_order", call, id="1")
    finally:
        await connector.close(session)
    assert info.value.kind is ErrorKind.AUTH
    assert "[API] Invalid API key or access token" in str(info.value)
    assert "shpat_wrong" not in str(info.value)
    assert info.value.hint is not None and "access_token" in info.value.hint
    assert "shpat_wrong" in runtime.secrets  # type: ignore[attr-defined]


async def test_an_unknown_operation_is_a_clear_400(
    shop_handle: ServerHandle, http: httpx.Client
) -> None:
    answer = http.post(
        f"{shop_handle.url}/admin/api/2025-01/graphql.json",
        headers={"X-Shopify-Access-Token": "shpat_sandbox"},
        json={"query": "query Products { products(first: 1) { nodes { id } } }"},
    )
    assert answer.status_code == 400
    assert "Unknown operation 'Products'" in answer.json()["errors"][0]["message"]


# ------------------------------------------------------------------ orders
async def test_list_orders_pages_through_fulfilled_orders(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    shop.seed(90, rng_seed=3, products=6)
    out = await run(session, "list_orders", call, per_page=20)
    expected = {
        o["id"] for o in shop.orders.values() if o["displayFulfillmentStatus"] == "FULFILLED"
    }
    assert {o.id for o in out.items} == expected
    assert len(expected) > 40
    calls = [c for c in shop.calls if c.operation == "ListOrders"]
    assert len(calls) == len(expected) // 20 + 1
    assert [c.variables["after"] is None for c in calls] == [True] + [False] * (len(calls) - 1)
    assert calls[0].variables["query"] == "fulfillment_status:shipped"
    order = out.items[0]
    raw = shop.orders[order.id]
    assert order.number == raw["name"] and order.legacy_id == int(order.id.rsplit("/", 1)[1])
    assert order.email == raw["email"]
    assert order.customer_name == f"{raw['customer']['firstName']} {raw['customer']['lastName']}"
    assert (
        order.status == "FULFILLED" and order.fulfilled_at == raw["fulfillments"][-1]["createdAt"]
    )
    assert [li.sku for li in order.line_items] == [li["sku"] for li in raw["lineItems"]]
    assert out.cursor == max(o.updated_at for o in out.items)


async def test_cursor_filters_by_updated_at_with_overlap(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    first_id = fulfilled_order(shop, "a@example.com", T0)
    first = await run(session, "list_orders", call)
    assert [o.id for o in first.items] == [first_id]
    assert first.cursor == "2025-03-01T12:00:00Z"

    second_id = fulfilled_order(shop, "b@example.com", T0 + timedelta(hours=1))
    # The default overlap (120 s) re-reads the first order; the engine's journal dedupes it.
    second = await run(session, "list_orders", call, cursor=first.cursor)
    assert [o.id for o in second.items] == [first_id, second_id]
    sent = shop.calls[-1].variables["query"]
    assert sent == "fulfillment_status:shipped updated_at:>'2025-03-01T11:58:00Z'"
    assert second.cursor == "2025-03-01T13:00:00Z"
    exact = await run(session, "list_orders", call, cursor=first.cursor, overlap_seconds=0)
    assert [o.id for o in exact.items] == [second_id]

    wide = await run(session, "list_orders", call, cursor=second.cursor, overlap_seconds=7200)
    assert [o.id for o in wide.items] == [first_id, second_id]
    none = await run(session, "list_orders", call, cursor="2030-01-01T00:00:00Z")
    assert none.items == [] and none.cursor == "2030-01-01T00:00:00Z"


async def test_get_order_and_missing_order(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    order_id = fulfilled_order(shop, "a@example.com", T0)
    by_number = await run(session, "get_order", call, id=order_id.rsplit("/", 1)[1])
    assert by_number.id == order_id and by_number.skus == ["SKU-1"]
    with pytest.raises(ConnectorError) as info:
        await run(session, "get_order", call, id="gid://shopify/Order/1")
    assert info.value.kind is ErrorKind.NOT_FOUND
    with pytest.raises(ConnectorError, match="not a Order ID") as bad:
        await run(session, "get_order", call, id="gid://shopify/Product/1")
    assert bad.value.kind is ErrorKind.VALIDATION


async def test_add_order_tags_is_repeatable(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    order_id = fulfilled_order(shop, "a@example.com", T0)
    for _ in range(2):
        out = await run(session, "add_order_tags", call, id=order_id, tags=["review-asked"])
        assert out.id == order_id
    assert shop.orders[order_id]["tags"] == ["review-asked"]
    with pytest.raises(ConnectorError) as info:
        await run(session, "add_order_tags", call, id="gid://shopify/Order/1", tags=["x"])
    assert info.value.kind is ErrorKind.NOT_FOUND


# ------------------------------------------------------------------ inventory
async def test_get_inventory_at_the_default_location(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    shop.add_variant("SKU-1", 4)
    other = shop.add_location("Pop-up store")
    shop.add_variant("SKU-2", 9, location_id=other["id"])
    shop.add_variant("ODD SKU/7", 1)
    out = await run(session, "get_inventory", call, skus=["SKU-1", "SKU-2", "ODD SKU/7", "NOPE"])
    assert out.location_id == shop.default_location
    assert [(i.sku, i.available) for i in out.items] == [
        ("SKU-1", 4),
        ("SKU-2", None),
        ("ODD SKU/7", 1),
    ]
    assert out.missing == ["NOPE"]
    variants = [c for c in shop.calls if c.operation == "VariantsBySku"]
    assert variants[0].variables["query"] == 'sku:NOPE OR sku:"ODD SKU/7" OR sku:SKU-1 OR sku:SKU-2'


async def test_set_inventory_writes_only_changed_skus_in_chunks_of_250(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    for index in range(600):
        shop.add_variant(f"SKU-{index:04d}", 10)
    targets = [
        {"sku": f"SKU-{i:04d}", "quantity": 10 if i % 10 == 0 else 100 + i} for i in range(600)
    ]
    out = await run(session, "set_inventory", call, items=targets)

    mutations = shop.mutation_calls()
    sizes = [len(m.variables["input"]["quantities"]) for m in mutations]
    assert sizes == [250, 250, 40]
    first = mutations[0].variables["input"]
    assert first["name"] == "available" and first["reason"] == "correction"
    assert first["ignoreCompareQuantity"] is False
    assert first["quantities"][0] == {
        "inventoryItemId": shop.variants["gid://shopify/ProductVariant/7002"]["inventoryItem"][
            "id"
        ],
        "locationId": shop.default_location,
        "quantity": 101,
        "compareQuantity": 10,
    }
    assert len(out.updated) == 540 and out.unchanged == 60 and out.errors == []
    assert shop.available("SKU-0599") == 699
    # Cost-aware pacing kept every query under the bucket: nothing was throttled.
    assert not any(c.throttled for c in shop.calls)

    again = await run(session, "set_inventory", call, items=targets)
    assert len(shop.mutation_calls()) == 3
    assert again.updated == [] and again.unchanged == 600


async def test_plan_shows_the_diff_and_writes_nothing(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    shop.add_variant("SKU-0042", 7)
    shop.add_variant("SKU-0108", 0)
    shop.add_variant("SKU-0200", 3)
    spec = connector.actions["set_inventory"]
    inp = spec.Input.model_validate(
        {
            "items": [
                {"sku": "SKU-0042", "quantity": 5},
                {"sku": "SKU-0108", "quantity": 12},
                {"sku": "SKU-0200", "quantity": 3},
            ]
        }
    )
    changes = await spec.plan(session, inp, call)
    assert [c.format() for c in changes or []] == [
        "SKU-0042 stock 7 -> 5",
        "SKU-0108 stock 0 -> 12",
    ]
    assert shop.mutation_calls() == []


async def test_stale_levels_are_reported_and_the_rest_is_written(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    shop.add_variant("SKU-1", 1)
    shop.add_variant("SKU-2", 1)
    shop.add_variant("SKU-3", 1)
    elsewhere = shop.add_location("Other")
    shop.add_variant("SKU-4", 1, location_id=elsewhere["id"])

    def sale_between_read_and_write(record: ShopifyCall) -> None:
        if record.operation == "VariantsBySku" and shop.available("SKU-2") == 1:
            item = next(v for v in shop.variants.values() if v["sku"] == "SKU-2")
            shop.levels[(item["inventoryItem"]["id"], shop.default_location)]["available"] = 0

    shop.after_request = sale_between_read_and_write
    items = [{"sku": f"SKU-{n}", "quantity": 8} for n in range(1, 6)]
    out = await run(session, "set_inventory", call, items=items)
    assert [u.sku for u in out.updated] == ["SKU-1", "SKU-3"]
    assert [(e.sku, e.code) for e in out.errors] == [
        ("SKU-4", "ITEM_NOT_STOCKED_AT_LOCATION"),
        ("SKU-5", "SKU_NOT_FOUND"),
        ("SKU-2", "COMPARE_QUANTITY_STALE"),
    ]
    assert [shop.available(f"SKU-{n}") for n in (1, 2, 3)] == [8, 0, 8]
    assert len(shop.mutation_calls()) == 2  # atomic mutation: resent once without SKU-2


# ------------------------------------------------------------------ rate limits and faults
async def test_throttled_is_rate_limited_with_retry_after_from_the_cost(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    fulfilled_order(shop, "a@example.com", T0)
    shop.set_bucket(10)
    session.limiter.available = None  # the client has not seen the bucket yet
    with pytest.raises(ConnectorError) as info:
        await run(session, "list_orders", call, per_page=10, line_items=5)
    error = info.value
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.maybe_sent is False
    requested = 2 + 10 * (3 + 5)
    assert error.retry_after == pytest.approx((requested - 10) / 50)
    assert "Shopify throttled ListOrders" in str(error)


async def test_the_limiter_waits_for_the_bucket_before_the_next_query(
    shop: ShopifyServer, session: ShopifySession, call: CallContext, sleeps: Sleeps
) -> None:
    order_id = fulfilled_order(shop, "a@example.com", T0)
    shop.set_bucket(60)
    await run(session, "get_order", call, id=order_id)  # costs 54, actually 5: 55 left
    assert session.limiter.available == 55
    out = await run(session, "list_orders", call, per_page=10, line_items=5)  # costs 82
    assert len(out.items) == 1
    assert sleeps.waits == [pytest.approx((82 - 55) / 50 + 0.001)]  # paced, not throttled
    assert not any(c.throttled for c in shop.calls)


async def test_http_429_and_503_and_malformed_bodies(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    shop.faults.throttle(1, retry_after=2)
    with pytest.raises(ConnectorError) as limited:
        await run(session, "get_order", call, id="1")
    assert limited.value.kind is ErrorKind.RATE_LIMITED and limited.value.retry_after == 2

    shop.faults.unavailable()
    with pytest.raises(ConnectorError) as unavailable:
        await run(session, "get_order", call, id="1")
    assert unavailable.value.kind is ErrorKind.TRANSIENT

    shop.faults.malformed()
    with pytest.raises(ConnectorError) as malformed:
        await run(session, "get_order", call, id="1")
    assert malformed.value.kind is ErrorKind.PERMANENT
    assert "malformed JSON from POST /admin/api/2025-01/graphql.json" in str(malformed.value)
    assert malformed.value.maybe_sent is False  # a query changes nothing


async def test_connection_dropped_after_the_mutation_may_have_been_sent(
    shop: ShopifyServer, session: ShopifySession, call: CallContext
) -> None:
    shop.add_variant("SKU-1", 1)
    shop.faults.drop_after_write()
    with pytest.raises(ConnectorError) as info:
        await run(session, "set_inventory", call, items=[{"sku": "SKU-1", "quantity": 3}])
    assert info.value.maybe_sent is True
    assert info.value.kind is ErrorKind.TRANSIENT
    assert shop.available("SKU-1") == 3
    again = await run(session, "set_inventory", call, items=[{"sku": "SKU-1", "quantity": 3}])
    assert again.updated == [] and again.unchanged == 1


async def test_the_server_enforces_shopify_limits(
    shop_handle: ServerHandle, shop: ShopifyServer, http: httpx.Client
) -> None:
    shop.add_variant("SKU-1", 1)
    item = next(iter(shop.variants.values()))["inventoryItem"]["id"]
    quantity = {"inventoryItemId": item, "locationId": shop.default_location, "quantity": 1}
    query = "mutation SetInventory($input: InventorySetQuantitiesInput!) { x }"
    payload = {"name": "available", "reason": "correction", "ignoreCompareQuantity": True}
    answer = http.post(
        f"{shop_handle.url}/admin/api/2025-01/graphql.json",
        headers={"X-Shopify-Access-Token": "shpat_sandbox"},
        json={"query": query, "variables": {"input": {**payload, "quantities": [quantity] * 251}}},
    ).json()
    assert answer["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    cost = answer["extensions"]["cost"]["throttleStatus"]
    assert cost == {"maximumAvailable": 1000.0, "currentlyAvailable": 1000, "restoreRate": 50.0}


def test_actions_declare_effects() -> None:
    effects = {name: (a.effect.value, a.idempotency.value) for name, a in connector.actions.items()}
    assert effects == {
        "list_orders": ("read", "none"),
        "get_order": ("read", "none"),
        "add_order_tags": ("write", "natural"),
        "get_inventory": ("read", "none"),
        "set_inventory": ("write", "natural"),
    }
