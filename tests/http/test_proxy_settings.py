"""Every HTTP connector takes the `proxy` setting (and `verify_tls`, `ca_file`): each one here
reads from its sandbox stand-in through a local HTTP proxy, which sees the request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flowkit.connectors import quickbooks, shopify, slack, stripe, woocommerce
from flowkit.connectors.base import CallContext
from flowkit.sandbox.runner import Sandbox


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    with Sandbox(seed=3) as sandbox:
        yield sandbox.env()


def _case(env: dict[str, str], name: str) -> tuple[Any, dict[str, Any], str, dict[str, Any]]:
    """(connector, settings, action, input) reading from the sandbox."""
    if name == "stripe":
        settings = {"api_key": env["STRIPE_API_KEY"], "base_url": env["FLOWKIT_STRIPE_URL"]}
        return stripe.connector, settings, "list_charges", {}
    if name == "woocommerce":
        settings = {
            "base_url": env["WOO_URL"],
            "consumer_key": env["WOO_CONSUMER_KEY"],
            "consumer_secret": env["WOO_CONSUMER_SECRET"],
        }
        return woocommerce.connector, settings, "get_stock", {"skus": ["SKU-0001"]}
    if name == "shopify":
        settings = {"shop_url": env["SHOPIFY_URL"], "access_token": env["SHOPIFY_ACCESS_TOKEN"]}
        return shopify.connector, settings, "list_orders", {}
    if name == "quickbooks":
        settings = {
            "realm_id": env["QBO_REALM_ID"],
            "client_id": env["QBO_CLIENT_ID"],
            "client_secret": env["QBO_CLIENT_SECRET"],
            "refresh_token": env["QBO_REFRESH_TOKEN"],
            "base_url": env["QBO_BASE_URL"],
            "token_url": env["QBO_TOKEN_URL"],
        }
        return quickbooks.connector, settings, "query", {"query": "select * from Customer"}
    settings = {"webhook_url": env["SLACK_WEBHOOK_URL"]}
    return slack.connector, settings, "post_message", {"text": "through the proxy"}


@pytest.mark.parametrize("name", ["stripe", "woocommerce", "shopify", "quickbooks", "slack"])
async def test_the_connector_goes_through_its_proxy(
    name: str, env: dict[str, str], connect_proxy: Any, runtime: Any
) -> None:
    connector, settings, action_name, values = _case(env, name)
    proxy = f"http://flowkit:pw-{name}@127.0.0.1:{connect_proxy.port}"
    config = connector.settings.model_validate({**settings, "proxy": proxy})
    session = await connector.open(config, runtime)
    try:
        action = connector.actions[action_name]
        output = await action.run(session, action.Input.model_validate(values), CallContext("k1"))
    finally:
        await connector.close(session)
    assert output is not None
    assert connect_proxy.heads, f"{name} did not use its proxy"
    first = connect_proxy.heads[0].split(b"\r\n")[0]
    assert first.split()[1].startswith(b"http://127.0.0.1:"), first  # absolute-form
    assert b"Proxy-Authorization: Basic " in connect_proxy.heads[0]
    assert f"pw-{name}" in runtime.secrets
