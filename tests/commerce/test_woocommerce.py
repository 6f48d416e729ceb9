"""The woocommerce connector against the WooCommerce sandbox over loopback HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from flowkit.connectors.base import CallContext, Runtime
from flowkit.connectors.woocommerce import (
    GetOrderInput,
    GetStockInput,
    HasReviewInput,
    ListOrdersInput,
    ListReviewsInput,
    SetStockInput,
    UpdateOrderInput,
    WooCommerceSession,
    connector,
)
from flowkit.errors import ConnectorError, ErrorKind
from flowkit.sandbox.woocommerce import BASE, Received, WooCommerceServer

from .conftest import woo_settings

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


async def run(session: WooCommerceSession, action: str, call: CallContext, **values: object):
    spec = connector.actions[action]
    return await spec.run(session, spec.Input.model_validate(values), call)


def order_calls(woo: WooCommerceServer) -> list[Received]:
    return [r for r in woo.requests if r.path == f"{BASE}/orders"]


# ------------------------------------------------------------------ auth and settings
async def test_wrong_secret_is_an_auth_error_with_the_api_message_and_a_hint(
    woo_url: str, runtime: Runtime, call: CallContext
) -> None:
    session = await connector.open(woo_settings(woo_url, consumer_secret="cs_wrong"), runtime)
    try:
        with pytest.raises(ConnectorError) as info:
            await run(session, "get_order", call, id=1)
    finally:
        await connector.close(session)
    error = info.value
    assert error.kind is ErrorKind.AUTH
    assert error.status == 401
    assert "Consumer secret is invalid. (woocommerce_rest_authentication_error)" in str(error)
    assert "cs_wrong" not in str(error)
    assert error.hint is not None and "auth: query" in error.hint


async def test_keys_as_query_parameters_are_accepted(
    woo: WooCommerceServer, woo_url: str, runtime: Runtime, call: CallContext
) -> None:
    woo.seed(3)
    session = await connector.open(woo_settings(woo_url, auth="query"), runtime)
    try:
        order = await run(session, "get_order", call, id=1001)
    finally:
        await connector.close(session)
    assert order.id == 1001
    assert woo.requests[-1].query["consumer_key"] == "ck_sandbox"
    assert "cs_sandbox" in runtime.secrets  # type: ignore[attr-defined]


def test_settings_reject_a_base_url_without_scheme() -> None:
    with pytest.raises(ValidationError, match="base_url"):
        woo_settings("shop.example.com")


def test_set_stock_input_rejects_duplicate_skus() -> None:
    with pytest.raises(ValidationError, match="SKU 'A' appears more than once"):
        SetStockInput.model_validate({"items": [{"sku": "A", "quantity": 1}] * 2})


def test_per_page_is_bounded_like_the_api() -> None:
    with pytest.raises(ValidationError, match="per_page"):
        ListOrdersInput(per_page=101)


# ------------------------------------------------------------------ orders
async def test_list_orders_follows_every_page(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.seed(120, rng_seed=7, products=10)
    out = await run(woo_session, "list_orders", call, status="completed", per_page=20)
    expected = sorted(o["id"] for o in woo.orders.values() if o["status"] == "completed")
    assert sorted(o.id for o in out.items) == expected
    assert len(expected) > 40  # several pages
    assert len(order_calls(woo)) >= len(expected) // 20
    modified = [o.modified_at for o in out.items]
    assert modified == sorted(modified)
    assert out.cursor == max(modified)
    first = out.items[0]
    raw = woo.orders[first.id]
    assert first.email == raw["billing"]["email"]
    assert first.customer_name == f"{raw['billing']['first_name']} {raw['billing']['last_name']}"
    assert first.completed_at == raw["date_completed_gmt"] + "Z"
    assert first.line_items[0].sku == raw["line_items"][0]["sku"]
    assert set(first.product_ids) == {li["product_id"] for li in raw["line_items"]}


async def test_cursor_returns_only_orders_modified_since_minus_the_overlap(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    product = woo.add_product("SKU-1", 5)
    old = woo.add_order(email="old@example.com", items=[(product["id"], 1)], created=T0)
    woo.set_order_status(old["id"], "completed", T0 + timedelta(minutes=1))
    first = await run(woo_session, "list_orders", call)
    assert [o.id for o in first.items] == [old["id"]]
    assert first.cursor == "2025-03-01T12:01:00Z"

    new = woo.add_order(email="new@example.com", items=[(product["id"], 2)], created=T0)
    woo.set_order_status(new["id"], "completed", T0 + timedelta(hours=2))
    second = await run(woo_session, "list_orders", call, cursor=first.cursor, overlap_seconds=0)
    assert [o.id for o in second.items] == [new["id"]]
    assert order_calls(woo)[-1].query["modified_after"] == "2025-03-01T12:01:00"
    assert second.cursor == "2025-03-01T14:00:00Z"

    # Nothing new: the cursor stays where it was (never moves back).
    third = await run(woo_session, "list_orders", call, cursor=second.cursor, overlap_seconds=0)
    assert third.items == []
    assert third.cursor == second.cursor

    # The overlap re-reads recent orders (the engine's journal deduplicates them).
    again = await run(
        woo_session, "list_orders", call, cursor=second.cursor, overlap_seconds=3600 * 3
    )
    assert {o.id for o in again.items} == {old["id"], new["id"]}


async def test_an_order_modified_while_paging_does_not_hide_another(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    product = woo.add_product("SKU-1", 5)
    ids = []
    for index in range(30):
        order = woo.add_order(email=f"c{index}@example.com", items=[(product["id"], 1)])
        woo.set_order_status(order["id"], "completed", T0 + timedelta(minutes=index))
        ids.append(order["id"])

    def touch_first_order_after_first_page(record: Received) -> None:
        if record.path.endswith("/orders") and len(order_calls(woo)) == 1:
            woo.set_order_status(ids[0], "completed", T0 + timedelta(days=1))

    woo.after_request = touch_first_order_after_first_page
    out = await run(woo_session, "list_orders", call, per_page=10)
    assert sorted(o.id for o in out.items) == sorted(ids)
    assert out.cursor == "2025-03-02T12:00:00Z"


async def test_more_orders_in_one_second_than_a_page_are_all_read(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    product = woo.add_product("SKU-1", 5)
    ids = []
    for index in range(25):
        order = woo.add_order(email=f"c{index}@example.com", items=[(product["id"], 1)])
        woo.set_order_status(order["id"], "completed", T0)
        ids.append(order["id"])
    out = await run(woo_session, "list_orders", call, per_page=10)
    assert sorted(o.id for o in out.items) == ids
    calls = [(r.query.get("modified_after"), r.query["page"]) for r in order_calls(woo)]
    # No cursor, then restart just before the last second read; that second holds more than a
    # page of orders, so the same bound is stepped through by page number.
    assert calls == [
        (None, "1"),
        ("2025-03-01T11:59:59", "1"),
        ("2025-03-01T11:59:59", "2"),
        ("2025-03-01T11:59:59", "3"),
    ]


async def test_get_order_missing_is_not_found(
    woo_session: WooCommerceSession, call: CallContext
) -> None:
    with pytest.raises(ConnectorError) as info:
        await run(woo_session, "get_order", call, id=999)
    assert info.value.kind is ErrorKind.NOT_FOUND
    assert "HTTP 404 from GET /wp-json/wc/v3/orders/999: Invalid ID." in str(info.value)


async def test_update_order_sets_status_and_meta(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.seed(2)
    inp = UpdateOrderInput(id=1001, status="completed", meta={"review_requests": 1})
    order = await connector.actions["update_order"].run(woo_session, inp, call)
    assert order.status == "completed"
    assert woo.orders[1001]["meta_data"][0]["key"] == "review_requests"
    assert woo.writes()[-1].method == "PUT"
    with pytest.raises(ValidationError, match="filter"):
        UpdateOrderInput(id=1, status="any")
    with pytest.raises(ConnectorError, match="at least one of"):
        await connector.actions["update_order"].run(woo_session, UpdateOrderInput(id=1), call)


# ------------------------------------------------------------------ reviews
async def test_reviews_by_email_and_products(
    woo: WooCommerceServer,
    woo_url: str,
    woo_session: WooCommerceSession,
    call: CallContext,
    http: httpx.Client,
) -> None:
    a, b = woo.add_product("SKU-A", 1), woo.add_product("SKU-B", 1)
    check = HasReviewInput(email="ada@example.com", product_ids=[a["id"], b["id"]])
    has = connector.actions["has_review"]
    assert (await has.run(woo_session, check, call)).model_dump() == {"exists": False, "count": 0}

    created = http.post(
        f"{woo_url}{BASE}/products/reviews",
        auth=("ck_sandbox", "cs_sandbox"),
        json={
            "product_id": b["id"],
            "review": "Lovely",
            "reviewer": "Ada",
            "reviewer_email": "ada@example.com",
            "rating": 5,
        },
    )
    assert created.status_code == 201
    woo.add_review(a["id"], "someone@example.com")

    assert (await has.run(woo_session, check, call)).model_dump() == {"exists": True, "count": 1}
    other = HasReviewInput(email="ada@example.com", product_ids=[a["id"]])
    assert (await has.run(woo_session, other, call)).exists is False

    listed = await connector.actions["list_reviews"].run(
        woo_session, ListReviewsInput(product_ids=[a["id"], b["id"]]), call
    )
    assert sorted(r.reviewer_email for r in listed.items) == [
        "ada@example.com",
        "someone@example.com",
    ]
    query = [r for r in woo.requests if r.path.endswith("/products/reviews") and r.method == "GET"][
        -1
    ].query
    assert query["product"] == f"{a['id']},{b['id']}"


# ------------------------------------------------------------------ stock
async def test_get_stock_reports_levels_and_missing_skus(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.add_product("SKU-1", 4)
    woo.add_product("SKU-2", None, manage_stock=False)
    out = await connector.actions["get_stock"].run(
        woo_session, GetStockInput(skus=["SKU-1", "SKU-2", "NOPE"]), call
    )
    assert [(i.sku, i.stock_quantity, i.manage_stock) for i in out.items] == [
        ("SKU-1", 4, True),
        ("SKU-2", None, False),
    ]
    assert out.missing == ["NOPE"]


async def test_set_stock_writes_only_changed_skus_in_batches_of_100(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    for index in range(250):
        woo.add_product(f"SKU-{index:04d}", 10)
    targets = [
        {"sku": f"SKU-{i:04d}", "quantity": 10 if i % 25 == 0 else 1000 + i} for i in range(250)
    ]
    out = await run(woo_session, "set_stock", call, items=targets)

    batches = woo.batch_calls()
    assert [len(b.body["update"]) for b in batches] == [100, 100, 40]
    sent = [u for b in batches for u in b.body["update"]]
    changed = {f"SKU-{i:04d}" for i in range(250) if i % 25 != 0}
    assert {woo.products[u["id"]]["sku"] for u in sent} == changed
    assert all(u["manage_stock"] is True for u in sent)
    assert len(out.updated) == len(changed) == 240
    assert out.unchanged == 10 and out.errors == []
    assert woo.stock("SKU-0042") == 1042
    assert all(r.method == "GET" for r in woo.requests if r not in batches)

    # Running it again changes nothing and sends no batch: setting absolute levels is idempotent.
    again = await run(woo_session, "set_stock", call, items=targets)
    assert len(woo.batch_calls()) == 3
    assert again.updated == [] and again.unchanged == 250


async def test_plan_lists_the_changes_without_writing(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.add_product("SKU-0042", 7)
    woo.add_product("SKU-0108", 0)
    woo.add_product("SKU-0200", 3)
    woo.add_product("SKU-0300", None, manage_stock=False)
    inp = SetStockInput.model_validate(
        {"items": [{"sku": "SKU-0042", "quantity": 5}, {"sku": "SKU-0108", "quantity": 12},
                   {"sku": "SKU-0200", "quantity": 3}, {"sku": "SKU-0300", "quantity": 1},
                   {"sku": "GONE", "quantity": 1}]}
    )  # fmt: skip
    changes = await connector.actions["set_stock"].plan(woo_session, inp, call)
    assert changes is not None
    assert [c.format() for c in changes] == [
        "SKU-0042 stock 7 -> 5",
        "SKU-0108 stock 0 -> 12",
        "SKU-0300 stock None -> 1",
    ]
    assert woo.writes() == []


async def test_set_stock_reports_per_item_errors_from_the_batch(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    keep = woo.add_product("SKU-1", 1)
    gone = woo.add_product("SKU-2", 1)

    def delete_after_read(record: Received) -> None:
        if record.path.endswith("/products") and gone["id"] in woo.products:
            del woo.products[gone["id"]]  # deleted by someone between our read and our write

    woo.after_request = delete_after_read
    items = [{"sku": sku, "quantity": 5} for sku in ("SKU-1", "SKU-2", "SKU-9")]
    out = await run(woo_session, "set_stock", call, items=items)
    assert [(u.sku, u.old, u.new) for u in out.updated] == [("SKU-1", 1, 5)]
    assert woo.products[keep["id"]]["stock_quantity"] == 5
    assert [(e.sku, e.code) for e in out.errors] == [
        ("SKU-9", "sku_not_found"),
        ("SKU-2", "woocommerce_rest_product_invalid_id"),
    ]


def test_the_server_refuses_batches_over_100_like_woocommerce(
    woo: WooCommerceServer, woo_url: str, http: httpx.Client
) -> None:
    product = woo.add_product("SKU-1", 1)
    answer = http.post(
        f"{woo_url}{BASE}/products/batch",
        auth=("ck_sandbox", "cs_sandbox"),
        json={"update": [{"id": product["id"], "stock_quantity": 2}] * 101},
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == "woocommerce_rest_request_entity_too_large"
    assert woo.stock("SKU-1") == 1


# ------------------------------------------------------------------ faults
async def test_429_is_rate_limited_with_retry_after(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.faults.throttle(1, retry_after=7)
    with pytest.raises(ConnectorError) as info:
        await run(woo_session, "list_orders", call)
    assert info.value.kind is ErrorKind.RATE_LIMITED
    assert info.value.retry_after == 7
    assert (await run(woo_session, "list_orders", call)).items == []


async def test_503_is_transient(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.faults.unavailable()
    with pytest.raises(ConnectorError) as info:
        await run(woo_session, "get_stock", call, skus=["A"])
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.status == 503


async def test_malformed_json_is_permanent_with_a_clear_message(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.faults.malformed()
    with pytest.raises(ConnectorError) as info:
        await run(woo_session, "list_orders", call)
    assert info.value.kind is ErrorKind.PERMANENT
    assert str(info.value).startswith("malformed JSON from GET /wp-json/wc/v3/orders")


async def test_connection_dropped_after_the_batch_write_may_have_been_sent(
    woo: WooCommerceServer, woo_session: WooCommerceSession, call: CallContext
) -> None:
    woo.add_product("SKU-1", 1)
    woo.faults.drop_after_write()
    with pytest.raises(ConnectorError) as info:
        await run(woo_session, "set_stock", call, items=[{"sku": "SKU-1", "quantity": 9}])
    assert info.value.maybe_sent is True
    assert info.value.kind is ErrorKind.TRANSIENT
    assert woo.stock("SKU-1") == 9  # the write happened; only the answer was lost
    assert connector.actions["set_stock"].retry_safe
    again = await run(woo_session, "set_stock", call, items=[{"sku": "SKU-1", "quantity": 9}])
    assert again.updated == [] and again.unchanged == 1


async def test_read_timeout_is_a_timeout(
    woo: WooCommerceServer, woo_url: str, runtime: Runtime, call: CallContext
) -> None:
    woo.faults.latency = 0.2
    session = await connector.open(woo_settings(woo_url, timeout=0.05), runtime)
    try:
        with pytest.raises(ConnectorError) as info:
            await run(session, "get_order", call, id=1)
    finally:
        await connector.close(session)
    assert info.value.kind is ErrorKind.TIMEOUT


async def test_actions_declare_effects_for_dry_run() -> None:
    effects = {name: (a.effect.value, a.idempotency.value) for name, a in connector.actions.items()}
    assert effects == {
        "list_orders": ("read", "none"),
        "get_order": ("read", "none"),
        "update_order": ("write", "natural"),
        "list_reviews": ("read", "none"),
        "has_review": ("read", "none"),
        "get_stock": ("read", "none"),
        "set_stock": ("write", "natural"),
    }
    simulated = connector.actions["get_order"].simulate(GetOrderInput(id=1), CallContext("k"))
    assert simulated.id == 0
