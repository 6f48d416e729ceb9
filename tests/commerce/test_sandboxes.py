"""The WooCommerce and Shopify sandboxes answer like the public references say."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from flowkit.sandbox.server import ServerHandle, serve_in_thread
from flowkit.sandbox.shopify import ShopifyServer
from flowkit.sandbox.woocommerce import BASE, WooCommerceServer

from .conftest import FakeClock

KEYS = ("ck_sandbox", "cs_sandbox")
LIST_ORDERS = (
    "query ListOrders($first: Int!, $after: String, $query: String, $lineItems: Int!) "
    "{ orders(first: $first, after: $after, query: $query) "
    "{ edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"
)


@pytest.fixture
def wc(woo: WooCommerceServer, woo_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=woo_url + BASE, auth=KEYS, verify=False) as client:
        yield client


class GraphQL:
    """Posts to the sandbox's GraphQL endpoint with the right token."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/admin/api/2025-01/graphql.json"
        headers = {"X-Shopify-Access-Token": "shpat_sandbox"}
        self.client = httpx.Client(headers=headers, verify=False)

    def post(self, **kwargs: Any) -> httpx.Response:
        return self.client.post(self.url, **kwargs)


@pytest.fixture
def gql(shop_handle: ServerHandle) -> Iterator[GraphQL]:
    client = GraphQL(shop_handle.url)
    yield client
    client.client.close()


# ------------------------------------------------------------------ WooCommerce
def test_woocommerce_auth_errors(woo_url: str, http: httpx.Client) -> None:
    anonymous = http.get(f"{woo_url}{BASE}/orders")
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "code": "woocommerce_rest_cannot_view",
        "message": "Sorry, you cannot list resources.",
        "data": {"status": 401},
    }
    wrong_key = http.get(f"{woo_url}{BASE}/orders", auth=("ck_other", "cs_sandbox"))
    assert wrong_key.json()["message"] == "Consumer key is invalid."
    by_query = http.get(
        f"{woo_url}{BASE}/orders", params={"consumer_key": KEYS[0], "consumer_secret": KEYS[1]}
    )
    assert by_query.status_code == 200


def test_woocommerce_pagination_headers(woo: WooCommerceServer, wc: httpx.Client) -> None:
    woo.seed(25, products=3)
    first = wc.get("/orders", params={"per_page": 10})
    assert first.headers["X-WP-Total"] == "25" and first.headers["X-WP-TotalPages"] == "3"
    assert 'rel="next"' in first.headers["Link"] and 'rel="prev"' not in first.headers["Link"]
    last = wc.get("/orders", params={"per_page": 10, "page": 3})
    assert len(last.json()) == 5 and 'rel="next"' not in last.headers["Link"]
    ids = [o["id"] for o in first.json()]
    assert ids == sorted(ids, reverse=True)  # default: newest first (orderby=date, order=desc)


def test_woocommerce_parameter_and_route_errors(wc: httpx.Client) -> None:
    too_big = wc.get("/orders", params={"per_page": 101})
    assert too_big.status_code == 400
    assert too_big.json()["code"] == "rest_invalid_param"
    assert too_big.json()["data"]["params"]["per_page"].startswith("per_page must be between 1")
    bad_status = wc.get("/orders", params={"status": "shipped"})
    assert bad_status.status_code == 400
    assert wc.get("/coupons").json()["code"] == "rest_no_route"
    broken = wc.post(
        "/products/batch", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["code"] == "rest_invalid_json"


def test_woocommerce_filters(woo: WooCommerceServer, wc: httpx.Client) -> None:
    product = woo.add_product("SKU-1", 1)
    t0 = datetime(2025, 5, 1, tzinfo=UTC)
    early = woo.add_order(email="a@example.com", items=[(product["id"], 1)], created=t0)
    late = woo.add_order(email="b@example.com", items=[(product["id"], 1)], created=t0)
    woo.set_order_status(early["id"], "completed", t0 + timedelta(hours=1))
    woo.set_order_status(late["id"], "completed", t0 + timedelta(hours=3))
    params = {"modified_after": "2025-05-01T02:00:00", "status": "completed"}
    assert [o["id"] for o in wc.get("/orders", params=params).json()] == [late["id"]]
    # modified_after is strict, as WordPress' date query `after` is
    params = {"modified_after": "2025-05-01T03:00:00"}
    assert wc.get("/orders", params=params).json() == []
    assert [p["sku"] for p in wc.get("/products", params={"sku": "SKU-1,NOPE"}).json()] == ["SKU-1"]


def test_woocommerce_rate_limit_knob(http: httpx.Client) -> None:
    now = [datetime(2025, 1, 1, tzinfo=UTC)]
    woo = WooCommerceServer(clock=lambda: now[0])
    woo.limit_rate(2, burst=2)
    with serve_in_thread(woo.app) as handle:
        url = f"{handle.url}{BASE}/orders"
        codes = [http.get(url, auth=KEYS).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = http.get(url, auth=KEYS)
        assert limited.headers["Retry-After"] == "1"
        now[0] += timedelta(seconds=1)
        assert http.get(url, auth=KEYS).status_code == 200


def test_woocommerce_seed_is_deterministic() -> None:
    one, two = WooCommerceServer(), WooCommerceServer()
    one.seed(20, rng_seed=5)
    two.seed(20, rng_seed=5)
    strip = ("date_modified", "date_modified_gmt", "date_created", "date_created_gmt")
    assert [{k: v for k, v in o.items() if k not in strip} for o in one.orders.values()] == [
        {k: v for k, v in o.items() if k not in strip} for o in two.orders.values()
    ]
    assert {o["status"] for o in one.orders.values()} >= {"completed"}


# ------------------------------------------------------------------ Shopify
def test_shopify_edges_cursor_paging_and_cost(shop: ShopifyServer, gql: GraphQL) -> None:
    shop.seed(7, products=2)
    variables = {"first": 3, "lineItems": 2, "query": "fulfillment_status:any"}
    seen, after = [], None
    while True:
        body = gql.post(
            json={"query": LIST_ORDERS, "variables": {**variables, "after": after}}
        ).json()
        conn = body["data"]["orders"]
        assert "nodes" not in conn  # only what the query selects
        seen += [edge["node"]["id"] for edge in conn["edges"]]
        cost = body["extensions"]["cost"]
        assert cost["requestedQueryCost"] == 2 + 3 * (3 + 2)
        assert set(cost["throttleStatus"]) == {
            "maximumAvailable",
            "currentlyAvailable",
            "restoreRate",
        }
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(shop.orders)


def test_shopify_bucket_throttles_and_restores(
    shop: ShopifyServer, gql: GraphQL, clock: FakeClock
) -> None:
    request = {"query": LIST_ORDERS, "variables": {"first": 100, "lineItems": 5}}
    shop.set_bucket(500)
    throttled = gql.post(json=request)
    assert throttled.status_code == 200
    body = throttled.json()
    assert body["errors"][0]["message"] == "Throttled"
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert "data" not in body and body["extensions"]["cost"]["actualQueryCost"] is None
    clock.advance(6.1)  # 500 + 6.1 s × 50/s ≥ 802
    assert "data" in gql.post(json=request).json()


def test_shopify_request_errors(
    shop_handle: ServerHandle, gql: GraphQL, http: httpx.Client
) -> None:
    url = f"{shop_handle.url}/admin/api/2025-01/graphql.json"
    assert http.post(url, json={"query": LIST_ORDERS}).status_code == 401
    missing = gql.post(json={"variables": {}})
    assert missing.status_code == 400
    assert missing.json() == {"errors": {"query": "Required parameter missing or invalid"}}
    too_many = gql.post(json={"query": LIST_ORDERS, "variables": {"first": 251, "lineItems": 1}})
    assert "between 1 and 250" in too_many.json()["errors"][0]["message"]
    expensive = gql.post(json={"query": LIST_ORDERS, "variables": {"first": 250, "lineItems": 10}})
    assert expensive.json()["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    other = http.post(
        f"{shop_handle.url}/admin/api/latest/graphql.json",
        headers={"X-Shopify-Access-Token": "shpat_sandbox"},
        json={"query": LIST_ORDERS},
    )
    assert other.status_code == 404


def test_shopify_inventory_set_requires_compare_quantity(shop: ShopifyServer, gql: GraphQL) -> None:
    variant = shop.add_variant("SKU-1", 4)
    quantity = {
        "inventoryItemId": variant["inventoryItem"]["id"],
        "locationId": shop.default_location,
        "quantity": 9,
    }
    query = "mutation SetInventory($input: InventorySetQuantitiesInput!) { x }"
    variables = {"input": {"name": "available", "reason": "correction", "quantities": [quantity]}}
    body = gql.post(json={"query": query, "variables": variables}).json()
    errors = body["data"]["inventorySetQuantities"]["userErrors"]
    assert errors == [
        {
            "field": ["input", "quantities", "0", "compareQuantity"],
            "message": "The compareQuantity argument must be given to each quantity or ignored "
            "using ignoreCompareQuantity.",
            "code": "COMPARE_QUANTITY_REQUIRED",
        }
    ]
    assert shop.available("SKU-1") == 4
    variables["input"]["reason"] = "because"
    variables["input"]["ignoreCompareQuantity"] = True
    body = gql.post(json={"query": query, "variables": variables}).json()
    assert body["data"]["inventorySetQuantities"]["userErrors"][0]["code"] == "INVALID_REASON"
