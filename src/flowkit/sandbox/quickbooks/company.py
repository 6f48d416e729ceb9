"""The QuickBooks sandbox's company books: customers, items and invoices, their amounts, and the
API handlers that create, read, send and query them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from flowkit.sandbox.quickbooks.errors import QbFault
from flowkit.sandbox.quickbooks.query import QueryError, parse_query

CENT = Decimal("0.01")

_DUPLICATE_NAME = (
    "The name supplied already exists. : Another customer, vendor or employee is already "
    "using this name. Please use a different name."
)


@dataclass(frozen=True)
class SentInvoice:
    """One applied `POST /invoice/{id}/send`: which invoice went to which address."""

    invoice_id: str
    to: str
    request_id: str | None


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


class _Company:
    """The books of one realm and the API handlers on them (no auth, faults or replays)."""

    clock: Callable[[], datetime]
    home_currency: str
    customers: dict[str, dict[str, Any]]
    items: dict[str, dict[str, Any]]
    invoices: dict[str, dict[str, Any]]
    sent: list[SentInvoice]
    _ids: dict[str, int]
    _doc_number: int

    def _time(self) -> str:
        return self.clock().isoformat(timespec="milliseconds")

    def _stamp(self) -> str:
        return self.clock().isoformat(timespec="seconds")

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
