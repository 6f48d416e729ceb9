"""`Sandbox`: every stand-in started together; `env()` values reach working services."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest

from flowkit.sandbox import runner
from flowkit.sandbox.runner import SERVICES, Sandbox
from flowkit.sandbox.server import free_port

SET_INVENTORY = """mutation SetInventory($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) { userErrors { field message code } }
}"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=2) as running:
        yield running


def test_env_names_match_the_documented_table(sandbox: Sandbox) -> None:
    doc = runner.__doc__ or ""
    documented = {line.split("|")[1].strip() for line in doc.splitlines() if line.startswith("| ")}
    documented -= {"variable", "--------------------"}
    assert set(sandbox.env()) == documented


def test_every_service_answers_with_the_env_credentials(sandbox: Sandbox) -> None:
    env = sandbox.env()
    with httpx.Client(timeout=10, verify=False) as http:
        charges = http.get(
            env["FLOWKIT_STRIPE_URL"] + "/v1/charges", auth=(env["STRIPE_API_KEY"], "")
        ).json()
        assert len(charges["data"]) == 2

        token = http.post(
            env["QBO_TOKEN_URL"],
            data={"grant_type": "refresh_token", "refresh_token": env["QBO_REFRESH_TOKEN"]},
            auth=(env["QBO_CLIENT_ID"], env["QBO_CLIENT_SECRET"]),
        )
        assert token.status_code == 200, token.text
        qbo = f"{env['QBO_BASE_URL']}/v3/company/{env['QBO_REALM_ID']}"
        customers = http.get(
            qbo + "/query",
            params={"query": "select * from Customer"},
            headers={"Authorization": f"Bearer {token.json()['access_token']}",
                     "Accept": "application/json"},
        )  # fmt: skip
        assert len(customers.json()["QueryResponse"]["Customer"]) == 2

        products = http.get(
            env["WOO_URL"] + "/wp-json/wc/v3/products",
            auth=(env["WOO_CONSUMER_KEY"], env["WOO_CONSUMER_SECRET"]),
        )
        assert products.status_code == 200 and len(products.json()) >= 2

        locations = http.post(
            env["SHOPIFY_URL"] + "/admin/api/2025-01/graphql.json",
            headers={"X-Shopify-Access-Token": env["SHOPIFY_ACCESS_TOKEN"]},
            json={"query": "query ListLocations($first: Int!) { locations(first: $first) "
                  "{ nodes { id name } } }", "variables": {"first": 5}},
        )  # fmt: skip
        ids = [n["id"] for n in locations.json()["data"]["locations"]["nodes"]]
        assert env["SHOPIFY_LOCATION_ID"] in ids

        assert http.post(env["SLACK_WEBHOOK_URL"], json={"text": "hello"}).text == "ok"
        status = http.get(env["FLOWKIT_SANDBOX_URL"]).json()
        assert status["services"]["stripe"] == env["FLOWKIT_STRIPE_URL"]
        assert status["summary"]["slack_messages"] >= 1

    with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=5) as client:
        client.login(env["SMTP_USERNAME"], env["SMTP_PASSWORD"])
        message = EmailMessage()
        message["From"], message["To"] = env["MAIL_FROM"], "ada@example.com"
        message["Subject"], message["Message-ID"] = "Hi", "<env-test@flowkit.local>"
        message.set_content("hello")
        client.send_message(message)
    assert env["SMTP_SECURITY"] == "none"


def test_summary_and_views_report_what_was_sent() -> None:
    with Sandbox(seed=2) as sandbox, httpx.Client(timeout=10, verify=False) as http:
        env = sandbox.env()
        charge = next(iter(sandbox.stripe.charges))
        http.post(
            f"{env['FLOWKIT_STRIPE_URL']}/v1/charges/{charge}",
            data={"metadata[flowkit_invoice]": "1001"},
            auth=(env["STRIPE_API_KEY"], ""),
        )
        assert sandbox.quickbooks is not None
        qbo = sandbox.quickbooks
        customer = next(iter(qbo.customers))
        headers = {"Authorization": f"Bearer {qbo.issue_access_token()}"}
        invoice = http.post(
            f"{env['QBO_BASE_URL']}/v3/company/{env['QBO_REALM_ID']}/invoice",
            headers=headers,
            json={"CustomerRef": {"value": customer}, "Line": [
                {"Amount": 20, "DetailType": "SalesItemLineDetail",
                 "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]},
        )  # fmt: skip
        assert invoice.status_code == 200, invoice.text
        assert sandbox.woocommerce is not None
        product = next(iter(sandbox.woocommerce.products.values()))
        woo_auth = (env["WOO_CONSUMER_KEY"], env["WOO_CONSUMER_SECRET"])
        http.put(
            f"{env['WOO_URL']}/wp-json/wc/v3/products/{product['id']}",
            json={"stock_quantity": 42},
            auth=woo_auth,
        )
        assert sandbox.shopify is not None
        variant = next(iter(sandbox.shopify.variants.values()))
        quantities = [{"inventoryItemId": variant["inventoryItem"]["id"],
                       "locationId": env["SHOPIFY_LOCATION_ID"], "quantity": 9}]  # fmt: skip
        shop = http.post(
            env["SHOPIFY_URL"] + "/admin/api/2025-01/graphql.json",
            headers={"X-Shopify-Access-Token": env["SHOPIFY_ACCESS_TOKEN"]},
            json={"query": SET_INVENTORY, "variables": {"input": {
                "name": "available", "reason": "correction", "ignoreCompareQuantity": True,
                "quantities": quantities}}},
        )  # fmt: skip
        assert shop.json()["data"]["inventorySetQuantities"]["userErrors"] == []
        http.post(env["SLACK_WEBHOOK_URL"], json={"text": "item failed"})
        with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=5) as client:
            client.login(env["SMTP_USERNAME"], env["SMTP_PASSWORD"])
            for _ in range(2):  # a retried send: same Message-ID
                client.sendmail("shop@example.com", ["ada@example.com"],
                                "Subject: Invoice\r\nMessage-ID: <m1@x>\r\n\r\nHello")  # fmt: skip

        assert sandbox.summary() == {
            "emails_caught": 1,
            "email_deliveries": 2,
            "stripe_charges_marked": 1,
            "stripe_writes": 1,
            "slack_messages": 1,
            "invoices_created": 1,
            "invoices_sent": 0,
            "stock_updates": {"woocommerce": 1, "shopify": 1},
        }
        control = env["FLOWKIT_SANDBOX_URL"]
        views = http.get(control).json()["views"]
        assert set(views) == {"/mail", "/slack", "/stripe/charges", "/stripe/ledger",
                              "/invoices", "/stock", "/messages"}  # fmt: skip
        assert [m["subject"] for m in http.get(control + "/mail").json()] == ["Invoice"]
        assert len(http.get(control + "/messages").json()) == 2
        assert len(http.get(control + "/invoices").json()["created"]) == 1
        stock = http.get(control + "/stock").json()
        assert stock["woocommerce"][product["sku"]] == 42
        assert stock["shopify"][variant["sku"]] == 9
        marked = [c for c in http.get(control + "/stripe/charges").json() if c["metadata"]]
        assert [c["id"] for c in marked] == [charge]
        assert http.get(control + "/slack").json() == [{"text": "item failed"}]


def _free_block(size: int) -> int:
    for _ in range(50):
        base = free_port()
        if base + size > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError("no block of free ports")


def test_base_port_gives_consecutive_ports_in_documented_order() -> None:
    base = _free_block(len(SERVICES))
    with Sandbox(seed=1, base_port=base) as sandbox:
        ports = {name: int(url.rsplit(":", 1)[1]) for name, url in sandbox.urls.items()}
        assert ports == {name: base + i for i, name in enumerate(SERVICES)}
        assert sandbox.env()["SMTP_PORT"] == str(base + SERVICES.index("smtp"))


def test_busy_port_fails_before_anything_starts() -> None:
    base = _free_block(len(SERVICES))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + SERVICES.index("slack")))
        blocker.listen()
        sandbox = Sandbox(seed=1, base_port=base)
        with pytest.raises(OSError, match=rf"port {base + 4} \(slack\) is in use"):
            sandbox.start()
    assert sandbox.urls == {}
    with socket.socket() as probe:  # nothing was left listening
        probe.bind(("127.0.0.1", base))


def test_env_needs_a_started_sandbox() -> None:
    with pytest.raises(RuntimeError, match="start"):
        Sandbox().env()
