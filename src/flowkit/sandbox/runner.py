"""`Sandbox`: every stand-in server at once, seeded, on 127.0.0.1, for `flowkit sandbox` and tests.

    with Sandbox(seed=3) as sandbox:
        os.environ.update(sandbox.env())   # the shipped recipes read these
        ...                                 # run a recipe
        sandbox.summary()                   # what was sent

Services and ports: with `base_port=P` they take consecutive ports in this order — Stripe P,
QuickBooks P+1, WooCommerce P+2, Shopify P+3, Slack P+4, SMTP P+5, control page P+6; without
it, each takes a free port. A QuickBooks, WooCommerce or Shopify module that cannot be imported
is left out (its variables are then absent from `env()`).

The environment variables `env()` returns (the one table; recipes and docs use these names).
`<stripe>` etc. stand for the service's port; the values are public demo credentials.

| variable             | sandbox value                        | meaning                            |
| -------------------- | ------------------------------------ | ---------------------------------- |
| FLOWKIT_SANDBOX_URL  | http://127.0.0.1:<control>           | status page with counts and links  |
| FLOWKIT_STRIPE_URL   | http://127.0.0.1:<stripe>            | Stripe API base (api.stripe.com)   |
| STRIPE_API_KEY       | sk_test_flowkit_sandbox              | Stripe secret key                  |
| QBO_BASE_URL         | http://127.0.0.1:<quickbooks>        | QuickBooks API base                |
| QBO_TOKEN_URL        | <QBO_BASE_URL>/oauth2/v1/tokens/bearer | Intuit OAuth2 token endpoint     |
| QBO_REALM_ID         | 9341450000000001                     | QuickBooks company id              |
| QBO_CLIENT_ID        | sandbox-client-id                    | OAuth2 client id                   |
| QBO_CLIENT_SECRET    | sandbox-client-secret                | OAuth2 client secret               |
| QBO_REFRESH_TOKEN    | AB11-sandbox-refresh-token-0         | current refresh token (rotates)    |
| WOO_URL              | http://127.0.0.1:<woocommerce>       | store URL (API: /wp-json/wc/v3)    |
| WOO_CONSUMER_KEY     | ck_sandbox                           | REST API consumer key              |
| WOO_CONSUMER_SECRET  | cs_sandbox                           | REST API consumer secret           |
| SHOPIFY_URL          | http://127.0.0.1:<shopify>           | shop URL (Admin GraphQL API)       |
| SHOPIFY_ACCESS_TOKEN | shpat_sandbox                        | Admin API access token             |
| SHOPIFY_LOCATION_ID  | gid://shopify/Location/1             | location whose stock is synced     |
| SLACK_WEBHOOK_URL    | http://127.0.0.1:<slack>/services/T…/B…/X… | incoming webhook URL         |
| SMTP_HOST            | 127.0.0.1                            | mail server host                   |
| SMTP_PORT            | <smtp>                               | mail server port                   |
| SMTP_USERNAME        | sandbox                              | SMTP AUTH user                     |
| SMTP_PASSWORD        | sandbox-password                     | SMTP AUTH password                 |
| SMTP_SECURITY        | none                                 | none, starttls or tls              |
| MAIL_FROM            | shop@example.com                     | sender address of recipe emails    |
| MAIL_FROM_NAME       | Sandbox Shop                         | sender display name                |
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from flowkit.sandbox.mail import MailCatcher
from flowkit.sandbox.quickbooks import QuickBooksSandbox
from flowkit.sandbox.server import ServerHandle, serve_in_thread
from flowkit.sandbox.shopify import ShopifyServer
from flowkit.sandbox.slack import DEFAULT_HOOK, SlackSandbox
from flowkit.sandbox.stripe import StripeSandbox
from flowkit.sandbox.woocommerce import WooCommerceServer

__all__ = ["SERVICES", "Sandbox"]

SERVICES = ("stripe", "quickbooks", "woocommerce", "shopify", "slack", "smtp", "control")
SMTP_USERNAME = "sandbox"
SMTP_PASSWORD = "sandbox-password"
MAIL_FROM = "shop@example.com"
MAIL_FROM_NAME = "Sandbox Shop"


class Sandbox:
    """All stand-ins, started together; a context manager. Attributes `stripe`, `quickbooks`,
    `woocommerce`, `shopify`, `slack` and `mail` give the in-process state for assertions."""

    def __init__(self, seed: int = 3, base_port: int | None = None, *, rng_seed: int = 0) -> None:
        self.seed_count, self.base_port, self.rng_seed = seed, base_port, rng_seed
        self.stripe = StripeSandbox(rng_seed=rng_seed)
        self.slack = SlackSandbox()
        self.mail = MailCatcher(
            port=self._port("smtp"), username=SMTP_USERNAME, password=SMTP_PASSWORD
        )
        self.quickbooks = QuickBooksSandbox()
        self.woocommerce = WooCommerceServer()
        self.shopify = ShopifyServer()
        self.urls: dict[str, str] = {}
        self._handles: list[ServerHandle] = []
        self._started = False

    def _port(self, service: str) -> int | None:
        return None if self.base_port is None else self.base_port + SERVICES.index(service)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Sandbox:
        """Seed every service and start serving; stops what started if one fails."""
        if self._started:
            return self
        self._check_ports()
        self._seed()
        apps: list[tuple[str, web.Application]] = [
            ("stripe", self.stripe.app),
            ("quickbooks", self.quickbooks.app),
            ("woocommerce", self.woocommerce.app),
            ("shopify", self.shopify.app),
            ("slack", self.slack.app),
        ]
        try:
            for name, app in apps:
                self._serve(name, app)
            self.mail.start()
            self.urls["smtp"] = f"smtp://{self.mail.host}:{self.mail.port}"
            self._serve("control", self._control_app())
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _check_ports(self) -> None:
        """Fail before starting anything when a chosen port is taken (an `OSError` naming it)."""
        if self.base_port is None:
            return
        for service in SERVICES:
            port = self.base_port + SERVICES.index(service)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError as exc:
                    raise OSError(
                        exc.errno, f"port {port} ({service}) is in use: {exc.strerror}"
                    ) from None

    def _serve(self, name: str, app: web.Application) -> None:
        handle = serve_in_thread(app, self._port(name))
        self._handles.append(handle)
        self.urls[name] = handle.url

    def _seed(self) -> None:
        n, rng = self.seed_count, self.rng_seed
        self.stripe.seed(n)
        self.quickbooks.seed(n)
        self.woocommerce.seed(n, rng)
        self.shopify.seed(n, rng)

    def stop(self) -> None:
        """Stop every server (safe to call twice)."""
        for handle in reversed(self._handles):
            handle.stop()
        self._handles.clear()
        self.mail.stop()
        self._started = False

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ what recipes need
    def env(self) -> dict[str, str]:
        """The environment variables that point the shipped recipes at this sandbox."""
        if not self._started:
            raise RuntimeError("Sandbox.env() needs a started sandbox; call start() first.")
        env = {
            "FLOWKIT_SANDBOX_URL": self.urls["control"],
            "FLOWKIT_STRIPE_URL": self.urls["stripe"],
            "STRIPE_API_KEY": self.stripe.api_key,
        }
        qbo = self.quickbooks
        env |= {
            "QBO_BASE_URL": self.urls["quickbooks"],
            "QBO_TOKEN_URL": self.urls["quickbooks"] + "/oauth2/v1/tokens/bearer",
            "QBO_REALM_ID": str(qbo.realm_id),
            "QBO_CLIENT_ID": str(qbo.client_id),
            "QBO_CLIENT_SECRET": str(qbo.client_secret),
            "QBO_REFRESH_TOKEN": str(qbo.current_refresh_token),
        }
        env |= {
            "WOO_URL": self.urls["woocommerce"],
            "WOO_CONSUMER_KEY": str(self.woocommerce.consumer_key),
            "WOO_CONSUMER_SECRET": str(self.woocommerce.consumer_secret),
        }
        env |= {
            "SHOPIFY_URL": self.urls["shopify"],
            "SHOPIFY_ACCESS_TOKEN": str(self.shopify.access_token),
            "SHOPIFY_LOCATION_ID": str(self.shopify.default_location),
        }
        env |= {
            "SLACK_WEBHOOK_URL": self.slack.url(self.urls["slack"], DEFAULT_HOOK),
            "SMTP_HOST": self.mail.host,
            "SMTP_PORT": str(self.mail.port),
            "SMTP_USERNAME": SMTP_USERNAME,
            "SMTP_PASSWORD": SMTP_PASSWORD,
            "SMTP_SECURITY": "none",
            "MAIL_FROM": MAIL_FROM,
            "MAIL_FROM_NAME": MAIL_FROM_NAME,
        }
        return env

    def summary(self) -> dict[str, Any]:
        """What the recipes sent: emails, invoices, Stripe charges marked, stock writes, Slack."""
        out: dict[str, Any] = {
            "emails_caught": len(self.mail.unique()),
            "email_deliveries": len(self.mail.messages),
            "stripe_charges_marked": len(self.stripe.marked_charges()),
            "stripe_writes": len(self.stripe.ledger),
            "slack_messages": len(self.slack.messages),
        }
        out["invoices_created"] = len(self.quickbooks.created_invoices)
        out["invoices_sent"] = len(self.quickbooks.sent)
        out["stock_updates"] = {
            "woocommerce": _woo_stock_writes(self.woocommerce),
            "shopify": _shopify_stock_writes(self.shopify),
        }
        return out

    # ------------------------------------------------------------------ control page
    def _control_app(self) -> web.Application:
        app = web.Application()
        views: dict[str, Callable[[], Any]] = {
            "/mail": lambda: self.mail.messages_json(unique=True),
            "/slack": lambda: [m.payload for m in self.slack.messages],
            "/stripe/charges": lambda: sorted(
                self.stripe.charges.values(), key=lambda c: -int(c["created"])
            ),
            "/stripe/ledger": lambda: [vars(e) for e in self.stripe.ledger],
        }
        qbo = self.quickbooks
        views["/invoices"] = lambda: {
            "created": qbo.created_invoices,
            "sent": [vars(s) for s in qbo.sent],
        }
        views["/stock"] = self._stock_view

        async def index(_request: web.Request) -> web.Response:
            base = self.urls["control"]
            return web.json_response(
                {
                    "services": dict(self.urls),
                    "summary": self.summary(),
                    "views": {path: base + path for path in [*views, "/messages"]},
                },
                dumps=_pretty,
            )

        def make(view: Callable[[], Any]) -> Callable[[web.Request], Any]:
            async def handler(_request: web.Request) -> web.Response:
                return web.json_response(view(), dumps=_pretty)

            return handler

        app.router.add_get("/", index)
        for path, view in views.items():
            app.router.add_get(path, make(view))
        app.router.add_get("/messages", self.mail.handle_list)
        app.router.add_delete("/messages", self.mail.handle_clear)
        return app

    def _stock_view(self) -> dict[str, Any]:
        return {
            "woocommerce": {
                str(p.get("sku")): p.get("stock_quantity")
                for p in self.woocommerce.products.values()
            },
            "shopify": {
                str(v.get("sku")): self.shopify.available(str(v.get("sku")))
                for v in self.shopify.variants.values()
            },
        }


def _woo_stock_writes(woo: Any) -> int:
    """Product stock writes that succeeded: one per PUT products/{id}, one per batch item."""
    count = 0
    for record in woo.writes():
        if not 200 <= int(record.status or 0) < 300 or "/products" not in record.path:
            continue
        if record.path.endswith("/products/batch"):
            body = record.body if isinstance(record.body, dict) else {}
            count += len(body.get("update") or [])
        elif "/reviews" not in record.path:
            count += 1
    return count


def _shopify_stock_writes(shop: Any) -> int:
    """Inventory quantities sent in `inventorySetQuantities` calls that were answered 200."""
    count = 0
    for call in shop.mutation_calls("SetInventory"):
        if call.status == 200:
            data = call.variables.get("input") if isinstance(call.variables, dict) else None
            count += len(data.get("quantities") or []) if isinstance(data, dict) else 0
    return count


def _pretty(body: Any) -> str:
    return json.dumps(body, indent=2, default=str)
