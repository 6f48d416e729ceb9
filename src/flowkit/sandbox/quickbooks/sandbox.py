"""`QuickBooksSandbox`, one company plus the OAuth2 server that guards it: construction, test
helpers and fault knobs, the API plumbing (auth, `requestid` replays, injected failures), the
token endpoint, and `create_app` for `flowkit sandbox`."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from flowkit.sandbox.quickbooks.company import SentInvoice, _Company
from flowkit.sandbox.quickbooks.errors import QbFault

DEFAULT_REALM = "9341450000000001"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_REFRESH_TOKEN = "AB11-sandbox-refresh-token-0"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
ACCESS_TTL = 3600
REFRESH_TTL = 8726400

_DEMO_NAMES = [
    ("Amelia", "Hart"), ("Bruno", "Keller"), ("Chloe", "Nguyen"), ("Dario", "Rossi"),
    ("Elena", "Sousa"), ("Farid", "Haddad"), ("Greta", "Lind"), ("Hiro", "Tanaka"),
    ("Ines", "Moreau"), ("Jonas", "Berg"), ("Kara", "Osei"), ("Liam", "Walsh"),
]  # fmt: skip
_DEMO_ITEMS = [
    ("Services", "Service", "0"), ("Hours", "Service", "0"), ("Gift wrap", "Service", "4.5"),
    ("Ceramic mug", "NonInventory", "14"), ("Linen apron", "NonInventory", "32"),
]  # fmt: skip


@dataclass(frozen=True)
class ReceivedRequest:
    """A request seen by the API routes: method, path, requestid and minorversion."""

    method: str
    path: str
    request_id: str | None
    minor_version: str | None


@dataclass
class _Knobs:
    failures: list[tuple[int, float | None]] = field(default_factory=list)
    malformed: int = 0
    drop_after_write: int = 0
    latency: float = 0.0


Handler = Callable[[web.Request], Awaitable[dict[str, Any]]]


class QuickBooksSandbox(_Company):
    """One QuickBooks Online company (realm) plus the OAuth2 server that guards it.

    `app` is the aiohttp application; serve it with `flowkit.sandbox.server.serve_in_thread`.
    Tests read `customers`, `items`, `invoices`, `sent`, `requests`, `request_ids` and
    `token_requests`, and steer failures with `fail_next`, `malformed_next`,
    `drop_after_write`, `set_latency`, `expire_access_tokens` and `revoke_refresh_tokens`.
    """

    def __init__(
        self,
        *,
        realm_id: str = DEFAULT_REALM,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        refresh_token: str = DEFAULT_REFRESH_TOKEN,
        home_currency: str = "USD",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.realm_id = realm_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.home_currency = home_currency
        self.clock = clock
        self.customers: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.sent: list[SentInvoice] = []
        self.requests: list[ReceivedRequest] = []
        self.token_requests = 0
        self.refresh_tokens: set[str] = {refresh_token}
        self.access_tokens: dict[str, bool] = {}  # token -> still valid
        self._replies: dict[str, tuple[int, str]] = {}  # requestid -> status, JSON text
        self._ids = {"Customer": 0, "Item": 0, "Invoice": 129}
        self._doc_number = 1000
        self._knobs = _Knobs()
        self._lock = threading.Lock()
        self.app = self._build_app()
        for name, kind, price in _DEMO_ITEMS:
            self._add_item(name, kind, Decimal(price))

    # ------------------------------------------------------------------ test helpers
    @property
    def created_invoices(self) -> list[dict[str, Any]]:
        """Every invoice created, in creation order."""
        return list(self.invoices.values())

    @property
    def request_ids(self) -> list[str]:
        """The `requestid` values received, in order (repeats included)."""
        return [r.request_id for r in self.requests if r.request_id]

    @property
    def current_refresh_token(self) -> str:
        """The refresh token that works right now (the latest issued)."""
        if not self.refresh_tokens:
            raise LookupError("every refresh token of this sandbox has been revoked")
        return next(iter(self.refresh_tokens))

    def seed(self, n: int = 5) -> list[dict[str, Any]]:
        """Add `n` demo customers (the demo items always exist); return the customers added."""
        added = []
        for i in range(len(self.customers), len(self.customers) + n):
            given, family = _DEMO_NAMES[i % len(_DEMO_NAMES)]
            suffix = "" if i < len(_DEMO_NAMES) else f" {i // len(_DEMO_NAMES) + 1}"
            email = f"{given.lower()}.{family.lower()}{suffix.strip()}@example.com"
            body = {"GivenName": given, "FamilyName": family,
                    "DisplayName": f"{given} {family}{suffix}",
                    "PrimaryEmailAddr": {"Address": email}}  # fmt: skip
            added.append(self._create_customer(body))
        return added

    def issue_access_token(self) -> str:
        """Mint a valid access token directly (for tests that skip the OAuth2 dance)."""
        token = "eyJsbx." + secrets.token_urlsafe(24)
        self.access_tokens[token] = True
        return token

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working now (401 on its next use)."""
        for token in self.access_tokens:
            self.access_tokens[token] = False

    def revoke_refresh_tokens(self) -> None:
        """No refresh token works any more (the user disconnected the app): invalid_grant."""
        self.refresh_tokens.clear()

    def fail_next(
        self, count: int = 1, status: int = 503, retry_after: float | None = None
    ) -> None:
        """The next `count` API requests answer `status` (429 throttling or 5xx), unprocessed."""
        with self._lock:
            self._knobs.failures.extend([(status, retry_after)] * count)

    def malformed_next(self, count: int = 1) -> None:
        """The next `count` API requests answer 200 with truncated JSON, unprocessed."""
        with self._lock:
            self._knobs.malformed += count

    def drop_after_write(self, count: int = 1) -> None:
        """The next `count` writes are applied (and stored under their requestid), then the
        connection is closed without an answer."""
        with self._lock:
            self._knobs.drop_after_write += count

    def set_latency(self, seconds: float) -> None:
        """Delay every API answer by `seconds` (timeout tests)."""
        self._knobs.latency = seconds

    # ------------------------------------------------------------------ plumbing
    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(TOKEN_PATH, self._token)
        base = "/v3/company/{realm}"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/query", self._query),
            ("POST", "/query", self._query),
            ("POST", "/customer", self._post_customer),
            ("GET", "/customer/{id}", self._get_entity),
            ("GET", "/item/{id}", self._get_entity),
            ("POST", "/invoice", self._post_invoice),
            ("GET", "/invoice/{id}", self._get_entity),
            ("POST", "/invoice/{id}/send", self._send_invoice),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, base + path, self._api(handler))
        return app

    def _api(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            request_id = request.query.get("requestid")
            minor = request.query.get("minorversion")
            self.requests.append(ReceivedRequest(request.method, request.path, request_id, minor))
            if self._knobs.latency:
                await asyncio.sleep(self._knobs.latency)
            try:
                self._check_auth(request)
                injected = self._injected()
                if injected is not None:
                    return injected
                is_write = request.method == "POST" and not request.path.endswith("/query")
                if is_write and request_id:
                    if len(request_id) > 50:
                        raise QbFault("2010", "requestid can have a maximum of 50 characters")
                    replay = self._replies.get(request_id)
                    if replay is not None:
                        return self._json(*replay)
                try:
                    status, body = 200, await handler(request)
                except QbFault as fault:
                    status, body = fault.status, fault.body(self._time())
                if is_write:
                    if request_id:  # a snapshot: later changes must not alter the replay
                        self._replies[request_id] = (status, json.dumps(body))
                    if self._take_drop() and request.transport is not None:
                        request.transport.close()
                        raise web.HTTPServiceUnavailable()  # never reaches the closed socket
                return self._json(status, body)
            except QbFault as fault:
                headers = {}
                if fault.status == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="Intuit", error="invalid_token"'
                return self._json(fault.status, fault.body(self._time()), headers)

        return wrapped

    def _take_drop(self) -> bool:
        with self._lock:
            if self._knobs.drop_after_write <= 0:
                return False
            self._knobs.drop_after_write -= 1
            return True

    def _injected(self) -> web.Response | None:
        with self._lock:
            failure = self._knobs.failures.pop(0) if self._knobs.failures else None
            malformed = failure is None and self._knobs.malformed > 0
            if malformed:
                self._knobs.malformed -= 1
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            if status == 429:
                fault = QbFault("3001", "The request limit was reached.")
            else:
                fault = QbFault("10000", "System Failure Error: Service Unavailable", status=status)
            return self._json(status, fault.body(self._time()), headers)
        if malformed:
            text = '{"QueryResponse": {"Customer": [{"Id": '
            return web.Response(status=200, text=text, content_type="application/json")
        return None

    def _check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not token or not self.access_tokens.get(token, False):
            raise QbFault(
                "3200", "Token expired" if token in self.access_tokens else "Token invalid"
            )
        if request.match_info["realm"] != self.realm_id:
            raise QbFault("3100", "The access token is not valid for this company.")

    def _json(
        self, status: int, body: dict[str, Any] | str, headers: dict[str, str] | None = None
    ) -> web.Response:
        text = body if isinstance(body, str) else json.dumps(body)
        headers = {"intuit_tid": secrets.token_hex(8), **(headers or {})}
        return web.Response(
            text=text, status=status, headers=headers, content_type="application/json"
        )

    # ------------------------------------------------------------------ OAuth2
    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization", "") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        if form.get("grant_type") != "refresh_token":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        presented = str(form.get("refresh_token", ""))
        if presented not in self.refresh_tokens:
            error = {
                "error": "invalid_grant",
                "error_description": "Incorrect or invalid refresh token",
            }
            return web.json_response(error, status=400)
        self.refresh_tokens.discard(presented)  # strict rotation: the used token dies now
        rotated = "AB11" + secrets.token_urlsafe(30)
        self.refresh_tokens.add(rotated)
        body = {"token_type": "bearer", "access_token": self.issue_access_token(),
                "refresh_token": rotated, "expires_in": ACCESS_TTL,
                "x_refresh_token_expires_in": REFRESH_TTL}  # fmt: skip
        return web.json_response(body, headers={"Cache-Control": "no-store"})


SANDBOX_KEY: web.AppKey[QuickBooksSandbox] = web.AppKey("quickbooks_sandbox", QuickBooksSandbox)


def create_app(seed: int = 5, **options: Any) -> web.Application:
    """A seeded sandbox application (for `flowkit sandbox`); its state is `app[SANDBOX_KEY]`."""
    sandbox = QuickBooksSandbox(**options)
    sandbox.seed(seed)
    sandbox.app[SANDBOX_KEY] = sandbox
    return sandbox.app
