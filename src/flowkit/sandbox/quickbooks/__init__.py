"""A local, stateful stand-in for the QuickBooks Online Accounting API and Intuit's OAuth2 server.

It follows the public references closely enough that the `quickbooks` connector cannot tell it
from the real service for the calls flowkit makes:

* Base path `/v3/company/{realmId}/...`, JSON bodies, `?minorversion=` accepted (1-74 retired
  in August 2025, so it is recorded but not enforced):
  https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/minor-versions
* Query endpoint `GET /query?query=select * from Customer where ... STARTPOSITION n MAXRESULTS m`
  (also `POST /query` with an `application/text` body); `count(*)`; no OR; active records only
  unless `Active` is in the WHERE clause; `QueryResponse` with `startPosition`/`maxResults`:
  https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
  https://developer.intuit.com/hub/blog/2017/02/08/deep-dive-sql-queries/
* `POST /customer`, `GET /customer/{id}`, `GET /item/{id}`, `POST /invoice`, `GET /invoice/{id}`,
  `POST /invoice/{id}/send?sendTo=` (sets `EmailStatus=EmailSent`, `DeliveryInfo`, and
  `BillEmail.Address` to `sendTo`):
  https://developer.intuit.com/app/developer/qbo/docs/workflows/create-an-invoice
  https://pub.dev/documentation/another_quickbooks/latest/services_accounting_invoice_service/InvoiceService/sendInvoice.html
* `requestid` query parameter: a repeated id gets the original response replayed, with no new
  state change (ids up to 50 characters):
  https://blogs.intuit.com/2015/04/06/15346/
* Fault bodies `{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}, "time"}`;
  6240 Duplicate Name Exists (DisplayName is unique across customers, vendors, employees),
  610 Object Not Found, 2500 Invalid Reference Id, 2020 Required param missing, 4000 query errors,
  401 `AuthenticationFailed; errorCode=003200`, 429 `ThrottleExceeded; errorCode=003001`:
  https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes
  https://github.com/intuit/QuickBooks-V3-PHP-SDK/issues/241
  https://help.mobius-connect.com/support/solutions/articles/44002519554-message-throttleexceeded-errorcode-003001-statuscode-429
* OAuth2 token endpoint `POST /oauth2/v1/tokens/bearer` (Basic client auth, form body,
  `grant_type=refresh_token`), answering `access_token`, `refresh_token`, `expires_in`,
  `x_refresh_token_expires_in`; errors `{"error": "invalid_grant"}` (400) / `invalid_client` (401).
  Refresh tokens rotate strictly here: each refresh invalidates the one it used:
  https://nango.dev/blog/quickbooks-oauth-refresh-token-invalid-grant
  https://www.useparagon.com/integration-error-solutions/quickbooks-invalid-grant-error

Decisions where the reference is silent: a replayed `requestid` returns whatever the original
write answered (success or business fault) but throttling/auth/injected failures are not stored;
the fault knobs act before the request is processed, except `drop_after_write`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from flowkit.sandbox.quickbooks.query import QueryError, parse_query

__all__ = ["SANDBOX_KEY", "QbFault", "QuickBooksSandbox", "SentInvoice", "create_app"]

DEFAULT_REALM = "9341450000000001"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_REFRESH_TOKEN = "AB11-sandbox-refresh-token-0"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
ACCESS_TTL = 3600
REFRESH_TTL = 8726400
CENT = Decimal("0.01")

_VF = "ValidationFault"
_FAULTS: dict[str, tuple[int, str, str]] = {
    "610": (400, "Object Not Found", _VF),
    "2010": (400, "Request has invalid or unsupported property", _VF),
    "2020": (400, "Required param missing, need to supply the required value for the API", _VF),
    "2050": (400, "String length is either shorter or longer than supported by specification", _VF),
    "2500": (400, "Invalid Reference Id", _VF),
    "4000": (400, "Error parsing query", _VF),
    "4001": (400, "Invalid query", _VF),
    "6000": (400, "A business validation error has occurred while processing your request", _VF),
    "6070": (400, "Business Validation Error", _VF),
    "6140": (400, "Duplicate Document Number Error", _VF),
    "6240": (400, "Duplicate Name Exists Error", _VF),
    "3001": (429, "message=ThrottleExceeded; errorCode=003001; statusCode=429", "SERVICE"),
    "3100": (403, "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
             "AUTHORIZATION"),
    "3200": (401, "message=AuthenticationFailed; errorCode=003200; statusCode=401",
             "AUTHENTICATION"),
    "10000": (503, "An application error has occurred while processing your request",
              "SystemFault"),
}  # fmt: skip

_DUPLICATE_NAME = (
    "The name supplied already exists. : Another customer, vendor or employee is already "
    "using this name. Please use a different name."
)
_DEMO_NAMES = [
    ("Amelia", "Hart"), ("Bruno", "Keller"), ("Chloe", "Nguyen"), ("Dario", "Rossi"),
    ("Elena", "Sousa"), ("Farid", "Haddad"), ("Greta", "Lind"), ("Hiro", "Tanaka"),
    ("Ines", "Moreau"), ("Jonas", "Berg"), ("Kara", "Osei"), ("Liam", "Walsh"),
]  # fmt: skip
_DEMO_ITEMS = [
    ("Services", "Service", "0"), ("Hours", "Service", "0"), ("Gift wrap", "Service", "4.5"),
    ("Ceramic mug", "NonInventory", "14"), ("Linen apron", "NonInventory", "32"),
]  # fmt: skip


class QbFault(Exception):
    """A Fault answer: HTTP status, QuickBooks error code, Message, Detail and fault type."""

    def __init__(self, code: str, detail: str, *, status: int | None = None) -> None:
        default_status, message, kind = _FAULTS[code]
        super().__init__(message)
        self.status = status or default_status
        self.code, self.message, self.detail, self.kind = code, message, detail, kind

    def body(self, time: str) -> dict[str, Any]:
        error = {"Message": self.message, "Detail": self.detail, "code": self.code, "element": ""}
        return {"Fault": {"Error": [error], "type": self.kind}, "time": time}


@dataclass(frozen=True)
class SentInvoice:
    """One applied `POST /invoice/{id}/send`: which invoice went to which address."""

    invoice_id: str
    to: str
    request_id: str | None


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


def _money(value: Any, name: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        amount = Decimal("NaN")
    if not amount.is_finite() or isinstance(value, bool):
        raise QbFault("2010", f"Property Name:{name} has an invalid value: {value!r}")
    return amount


def _num(amount: Decimal) -> float | int:
    quantized = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return int(quantized) if quantized == quantized.to_integral() else float(quantized)


Handler = Callable[[web.Request], Awaitable[dict[str, Any]]]


class QuickBooksSandbox:
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

    def _time(self) -> str:
        return self.clock().isoformat(timespec="milliseconds")

    def _stamp(self) -> str:
        return self.clock().isoformat(timespec="seconds")

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

    # ------------------------------------------------------------------ entities
    def _next_id(self, entity: str) -> str:
        self._ids[entity] += 1
        return str(self._ids[entity])

    def _meta(self) -> dict[str, str]:
        return {"CreateTime": self._stamp(), "LastUpdatedTime": self._stamp()}

    def _add_item(self, name: str, kind: str, price: Decimal) -> dict[str, Any]:
        item_id = self._next_id("Item")
        item = {"Id": item_id, "SyncToken": "0", "Name": name, "FullyQualifiedName": name,
                "Type": kind, "UnitPrice": _num(price), "Active": True, "domain": "QBO",
                "sparse": False, "MetaData": self._meta()}  # fmt: skip
        self.items[item_id] = item
        return item

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.text() or "null")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise QbFault("2010", "The request body must be a JSON object")
        return data

    async def _post_customer(self, request: web.Request) -> dict[str, Any]:
        return {"Customer": self._create_customer(await self._body(request)), "time": self._time()}

    def _create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        parts = [body.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
        derived = " ".join(str(p) for p in parts if p) or body.get("CompanyName")
        name = str(body.get("DisplayName") or derived or "").strip()
        if not name:
            raise QbFault("2020", "Required parameter DisplayName is missing in the request")
        if len(name) > 500:
            raise QbFault("2050", "DisplayName is longer than 500 characters")
        if any(c["DisplayName"].casefold() == name.casefold() for c in self.customers.values()):
            raise QbFault("6240", _DUPLICATE_NAME)
        customer = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "MetaData")}
        customer.update({
            "Id": self._next_id("Customer"), "SyncToken": "0", "DisplayName": name,
            "FullyQualifiedName": name, "PrintOnCheckName": name, "Active": True, "Balance": 0,
            "CurrencyRef": {"value": self.home_currency}, "domain": "QBO", "sparse": False,
            "MetaData": self._meta(),
        })  # fmt: skip
        self.customers[customer["Id"]] = customer
        return customer

    async def _get_entity(self, request: web.Request) -> dict[str, Any]:
        entity = request.path.split("/")[4]
        store = {"customer": self.customers, "item": self.items, "invoice": self.invoices}[entity]
        found = store.get(request.match_info["id"])
        if found is None:
            raise QbFault("610", f"Object Not Found : {entity.title()} "
                          f"{request.match_info['id']} does not exist or was deleted")  # fmt: skip
        return {entity.title(): found, "time": self._time()}

    async def _post_invoice(self, request: web.Request) -> dict[str, Any]:
        body = await self._body(request)
        ref = body.get("CustomerRef")
        if not isinstance(ref, dict) or not ref.get("value"):
            raise QbFault("2020", "Required parameter CustomerRef is missing in the request")
        customer = self.customers.get(str(ref["value"]))
        if customer is None or not customer["Active"]:
            raise QbFault("2500", f"Invalid Reference Id : Customer {ref['value']} does not exist")
        currency = (body.get("CurrencyRef") or {}).get("value", self.home_currency)
        if currency != self.home_currency:
            raise QbFault("2500", f"Invalid Reference Id : Currency {currency} is not enabled "
                          "for this company (multicurrency is off)")  # fmt: skip
        lines, total = self._invoice_lines(body.get("Line"))
        doc_number = str(body.get("DocNumber") or "")
        if doc_number:
            clash = next((i for i in self.invoices.values() if i["DocNumber"] == doc_number), None)
            if clash is not None:
                raise QbFault("6140", f"Duplicate Document Number Error : You must specify a "
                              f"different number. This number has already been used. "
                              f"DocNumber={doc_number} is assigned to TxnType=Invoice with "
                              f"TxnId={clash['Id']}")  # fmt: skip
            if len(doc_number) > 21:
                raise QbFault("2050", "DocNumber is longer than 21 characters")
        else:
            self._doc_number += 1
            doc_number = str(self._doc_number)
        today = self.clock().date()
        invoice: dict[str, Any] = {
            "Id": self._next_id("Invoice"), "SyncToken": "0", "domain": "QBO", "sparse": False,
            "MetaData": self._meta(), "DocNumber": doc_number,
            "TxnDate": body.get("TxnDate") or today.isoformat(),
            "DueDate": body.get("DueDate") or (today + timedelta(days=30)).isoformat(),
            "CurrencyRef": {"value": currency}, "Line": lines,
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
            "TotalAmt": _num(total), "Balance": _num(total), "Deposit": 0,
            "EmailStatus": "NotSet", "PrintStatus": "NotSet", "ApplyTaxAfterDiscount": False,
        }  # fmt: skip
        for key in ("PrivateNote", "CustomerMemo", "BillEmail", "BillAddr", "ShipAddr"):
            if body.get(key):
                invoice[key] = body[key]
        if body.get("EmailStatus") == "NeedToSend":
            if not (invoice.get("BillEmail") or {}).get("Address"):
                raise QbFault("6000", "Business Validation Error: NeedToSend requires BillEmail")
            invoice["EmailStatus"] = "NeedToSend"
        self.invoices[invoice["Id"]] = invoice
        return {"Invoice": invoice, "time": self._time()}

    def _invoice_lines(self, raw: Any) -> tuple[list[dict[str, Any]], Decimal]:
        if not isinstance(raw, list) or not raw:
            raise QbFault("2020", "Required parameter Line is missing in the request")
        lines: list[dict[str, Any]] = []
        total = Decimal(0)
        for number, line in enumerate(raw, start=1):
            if not isinstance(line, dict) or line.get("DetailType") != "SalesItemLineDetail":
                raise QbFault("2010", f"Line {number}: DetailType must be SalesItemLineDetail")
            if "Amount" not in line:
                raise QbFault("2020", f"Required parameter Line.Amount is missing (line {number})")
            detail = dict(line.get("SalesItemLineDetail") or {})
            item_id = str((detail.get("ItemRef") or {}).get("value", "1"))
            item = self.items.get(item_id)
            if item is None or not item["Active"]:
                raise QbFault("2500", f"Invalid Reference Id : Item {item_id} does not exist")
            amount = _money(line["Amount"], "Amount")
            if "Qty" in detail and "UnitPrice" in detail:
                qty, price = _money(detail["Qty"], "Qty"), _money(detail["UnitPrice"], "UnitPrice")
                if (qty * price).quantize(CENT, ROUND_HALF_UP) != amount.quantize(CENT):
                    raise QbFault("6070", f"Amount is not equal to UnitPrice * Qty. Supplied "
                                  f"value:{amount} (line {number})")  # fmt: skip
            detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
            entry = {"Id": str(number), "LineNum": number, "Amount": _num(amount),
                     "DetailType": "SalesItemLineDetail",
                     "SalesItemLineDetail": detail}  # fmt: skip
            if line.get("Description"):
                entry["Description"] = str(line["Description"])
            lines.append(entry)
            total += amount
        subtotal = {"Amount": _num(total), "DetailType": "SubTotalLineDetail"}
        lines.append({**subtotal, "SubTotalLineDetail": {}})
        return lines, total

    async def _send_invoice(self, request: web.Request) -> dict[str, Any]:
        invoice = self.invoices.get(request.match_info["id"])
        if invoice is None:
            raise QbFault("610", f"Object Not Found : Invoice {request.match_info['id']} "
                          "does not exist or was deleted")  # fmt: skip
        to = request.query.get("sendTo") or (invoice.get("BillEmail") or {}).get("Address")
        if not to:
            raise QbFault("2020", "Required parameter sendTo or BillEmail is missing")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", to):
            raise QbFault("2010", f"Property Name:sendTo has an invalid email address: {to}")
        invoice["BillEmail"] = {"Address": to}
        invoice["EmailStatus"] = "EmailSent"
        invoice["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": self._stamp()}
        invoice["SyncToken"] = str(int(invoice["SyncToken"]) + 1)
        invoice["MetaData"]["LastUpdatedTime"] = self._stamp()
        self.sent.append(SentInvoice(invoice["Id"], to, request.query.get("requestid")))
        return {"Invoice": invoice, "time": self._time()}

    # ------------------------------------------------------------------ query
    async def _query(self, request: web.Request) -> dict[str, Any]:
        text = await request.text() if request.method == "POST" else request.query.get("query")
        try:
            if not text:
                raise QueryError("4000", "QueryParserError: the query is empty")
            parsed = parse_query(text)
        except QueryError as exc:
            raise QbFault(exc.code, exc.detail) from None
        store = {"Customer": self.customers, "Item": self.items, "Invoice": self.invoices}
        page, total = parsed.run(list(store[parsed.entity].values()))
        if parsed.count:
            return {"QueryResponse": {"totalCount": total}, "time": self._time()}
        response: dict[str, Any] = {}
        if page:
            response = {parsed.entity: page, "startPosition": parsed.start}
            response["maxResults"] = len(page)
        return {"QueryResponse": response, "time": self._time()}


SANDBOX_KEY: web.AppKey[QuickBooksSandbox] = web.AppKey("quickbooks_sandbox", QuickBooksSandbox)


def create_app(seed: int = 5, **options: Any) -> web.Application:
    """A seeded sandbox application (for `flowkit sandbox`); its state is `app[SANDBOX_KEY]`."""
    sandbox = QuickBooksSandbox(**options)
    sandbox.seed(seed)
    sandbox.app[SANDBOX_KEY] = sandbox
    return sandbox.app
