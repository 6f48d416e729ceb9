"""Fixtures for the WooCommerce and Shopify connectors against their sandbox servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from flowkit.connectors import shopify, woocommerce
from flowkit.connectors.base import CallContext, Runtime
from flowkit.sandbox.server import ServerHandle, serve_in_thread
from flowkit.sandbox.shopify import ShopifyServer
from flowkit.sandbox.woocommerce import WooCommerceServer
from flowkit.testing.connectors import MemoryKV


class FakeClock:
    """A monotonic clock the tests move by hand (the Shopify cost bucket refills with it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def runtime() -> Runtime:
    secrets: list[str] = []
    rt = Runtime(connection="test", kv=MemoryKV(), register_secret=secrets.append)
    rt.secrets = secrets  # type: ignore[attr-defined]
    return rt


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """A plain client for talking to the sandboxes directly (loopback HTTP only; a bare
    `httpx.get` would load the CA bundle on every call)."""
    with httpx.Client(verify=False) as client:
        yield client


@pytest.fixture
def call() -> CallContext:
    return CallContext(idempotency_key="fk-test", recipe="r", step="s", item_key="i")


# ------------------------------------------------------------------ WooCommerce
@pytest.fixture
def woo() -> WooCommerceServer:
    return WooCommerceServer()


@pytest.fixture
def woo_url(woo: WooCommerceServer) -> Iterator[str]:
    with serve_in_thread(woo.app) as handle:
        yield handle.url


def woo_settings(url: str, **overrides: Any) -> woocommerce.WooCommerceSettings:
    values: dict[str, Any] = {
        "base_url": url,
        "consumer_key": "ck_sandbox",
        "consumer_secret": "cs_sandbox",
        "timeout": 5,
    }
    return woocommerce.WooCommerceSettings.model_validate({**values, **overrides})


@pytest.fixture
async def woo_session(
    woo_url: str, runtime: Runtime
) -> AsyncIterator[woocommerce.WooCommerceSession]:
    session = await woocommerce.connector.open(woo_settings(woo_url), runtime)
    yield session
    await woocommerce.connector.close(session)


# ------------------------------------------------------------------ Shopify
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shop(clock: FakeClock) -> ShopifyServer:
    return ShopifyServer(clock=clock)


@pytest.fixture
def shop_handle(shop: ShopifyServer) -> Iterator[ServerHandle]:
    with serve_in_thread(shop.app) as handle:
        yield handle


def shop_settings(url: str, **overrides: Any) -> shopify.ShopifySettings:
    values: dict[str, Any] = {"shop_url": url, "access_token": "shpat_sandbox", "timeout": 5}
    return shopify.ShopifySettings.model_validate({**values, **overrides})
