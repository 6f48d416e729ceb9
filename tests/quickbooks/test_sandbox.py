"""The QuickBooks sandbox speaks the documented contract (raw HTTP, no connector)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowkit.sandbox.quickbooks import (
    DEFAULT_CLIENT_SECRET,
    SANDBOX_KEY,
    TOKEN_PATH,
    QuickBooksSandbox,
    create_app,
)
from flowkit.sandbox.server import ServerHandle


@pytest.fixture
def api(qbo: tuple[QuickBooksSandbox, ServerHandle]) -> Iterator[httpx.Client]:
    sandbox, handle = qbo
    headers = {"Authorization": f"Bearer {sandbox.issue_access_token()}"}
    base = f"{handle.url}/v3/company/{sandbox.realm_id}/"
    with httpx.Client(base_url=base, headers=headers) as client:
        yield client


def query(api: httpx.Client, statement: str) -> dict[str, Any]:
    answer = api.get("query", params={"query": statement, "minorversion": "75"})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["QueryResponse"]
    return result


def fault(answer: httpx.Response) -> tuple[int, str, str, str]:
    error = answer.json()["Fault"]["Error"][0]
    return answer.status_code, error["code"], error["Message"], error["Detail"]


def test_token_endpoint_rotates_strictly(
    qbo: tuple[QuickBooksSandbox, ServerHandle], api: httpx.Client
) -> None:
    sandbox, handle = qbo

    def token(refresh: str, secret: str = DEFAULT_CLIENT_SECRET) -> httpx.Response:
        return api.post(
            handle.url + TOKEN_PATH,
            data={"grant_type": "refresh_token", "refresh_token": refresh},
            auth=("sandbox-client-id", secret),
            headers={"Accept": "application/json", "Authorization": ""},
        )

    first = sandbox.current_refresh_token
    answer = token(first)
    body = answer.json()
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["x_refresh_token_expires_in"] == 8726400 and body["refresh_token"] != first
    reused = token(first)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert token(body["refresh_token"]).status_code == 200
    bad_client = token(sandbox.current_refresh_token, secret="wrong")
    assert bad_client.status_code == 401 and bad_client.json() == {"error": "invalid_client"}
    grant = api.post(
        handle.url + TOKEN_PATH,
        data={"grant_type": "password"},
        auth=("sandbox-client-id", DEFAULT_CLIENT_SECRET),
    )
    assert grant.json() == {"error": "unsupported_grant_type"}


def test_api_needs_a_live_token_for_its_own_realm(
    qbo: tuple[QuickBooksSandbox, ServerHandle], api: httpx.Client
) -> None:
    sandbox, handle = qbo
    anonymous = httpx.get(f"{handle.url}/v3/company/{sandbox.realm_id}/invoice/130")
    assert fault(anonymous)[:2] == (401, "3200")
    assert anonymous.headers["WWW-Authenticate"].startswith('Bearer realm="Intuit"')
    assert anonymous.json()["Fault"]["type"] == "AUTHENTICATION"
    other = api.get(f"{handle.url}/v3/company/123/invoice/130")
    assert fault(other)[:2] == (403, "3100")
    sandbox.expire_access_tokens()
    assert fault(api.get("customer/1"))[3] == "Token expired"


def test_query_language(sandbox: QuickBooksSandbox, api: httpx.Client) -> None:
    sandbox.seed(9)  # 12 customers
    assert query(api, "select count(*) from Customer") == {"totalCount": 12}
    page = query(
        api, "SELECT * FROM Customer ORDERBY DisplayName DESC STARTPOSITION 3 MAXRESULTS 4"
    )
    names = sorted((c["DisplayName"] for c in sandbox.customers.values()), reverse=True)
    assert [c["DisplayName"] for c in page["Customer"]] == names[2:6]
    assert (page["startPosition"], page["maxResults"]) == (3, 4)
    assert query(api, "select * from Customer STARTPOSITION 13") == {}
    liked = query(api, "select Id, DisplayName from Customer where DisplayName like '%ar%'")
    assert {tuple(c) for c in liked["Customer"]} == {("Id", "DisplayName")}
    assert all("ar" in c["DisplayName"].lower() for c in liked["Customer"])
    chosen = query(api, "select * from Customer where Id in ('2', '5') and Active = true")
    assert [c["Id"] for c in chosen["Customer"]] == ["2", "5"]
    sandbox.customers["2"]["Active"] = False
    assert query(api, "select count(*) from Customer") == {"totalCount": 11}
    both = query(api, "select count(*) from Customer where Active in (true, false)")
    assert both == {"totalCount": 12}
    cheap = query(api, "select * from Item where UnitPrice >= 14 orderby UnitPrice")
    assert [i["Name"] for i in cheap["Item"]] == ["Ceramic mug", "Linen apron"]
    posted = api.post(
        "query", content="select count(*) from Item", headers={"Content-Type": "application/text"}
    )
    assert posted.json()["QueryResponse"] == {"totalCount": 5}


def test_query_escapes_and_plus_signs(sandbox: QuickBooksSandbox, api: httpx.Client) -> None:
    body = {"DisplayName": "D'Arcy \\ Co", "PrimaryEmailAddr": {"Address": "d+arcy@example.com"}}
    assert api.post("customer", json=body).status_code == 200
    found = query(api, "select * from Customer where DisplayName = 'D\\'Arcy \\\\ Co'")
    assert found["Customer"][0]["PrimaryEmailAddr"]["Address"] == "d+arcy@example.com"
    by_mail = query(api, "select * from Customer where PrimaryEmailAddr = 'D+Arcy@example.com'")
    assert by_mail["Customer"][0]["DisplayName"] == "D'Arcy \\ Co"


@pytest.mark.parametrize(
    ("statement", "code", "detail"),
    [
        ("select * from Customer where DisplayName = 'a' or Id = '1'", "4000", "OR is not"),
        ("select * from Vendor", "4001", "Invalid entity name Vendor"),
        ("select * from Item MAXRESULTS 1001", "4000", "MAXRESULTS must be between"),
        ("select * from", "4000", "unexpected end of query"),
        ("select * from Item where Name = 'x", "4000", "Encountered"),
        ("update Item", "4000", "expecting SELECT"),
    ],
)
def test_query_errors(api: httpx.Client, statement: str, code: str, detail: str) -> None:
    status, got_code, message, got_detail = fault(api.get("query", params={"query": statement}))
    assert (status, got_code) == (400, code) and detail in got_detail
    assert message in ("Error parsing query", "Invalid query")


def invoice(api: httpx.Client, **extra: Any) -> httpx.Response:
    line = {
        "Amount": 10,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
    }
    return api.post("invoice", json={"CustomerRef": {"value": "1"}, "Line": [line], **extra})


def test_invoice_validation_faults(api: httpx.Client) -> None:
    line = {
        "Amount": 10,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "4"}, "Qty": 3, "UnitPrice": 3},
    }
    assert fault(invoice(api, Line=[line]))[1] == "6070"
    assert fault(invoice(api, Line=[]))[1:4:2] == (
        "2020",
        "Required parameter Line is missing in the request",
    )
    assert fault(invoice(api, CurrencyRef={"value": "EUR"}))[1] == "2500"
    unknown = {**line, "SalesItemLineDetail": {"ItemRef": {"value": "77"}}}
    assert "Item 77" in fault(invoice(api, Line=[unknown]))[3]
    assert fault(invoice(api, EmailStatus="NeedToSend"))[1] == "6000"
    assert fault(invoice(api, DocNumber="x" * 22))[1] == "2050"
    assert fault(api.post("invoice", content=b"[1, 2]"))[1] == "2010"
    assert fault(api.post("invoice/424/send", params={"sendTo": "a@b.co"}))[1] == "610"
    made = invoice(api).json()["Invoice"]
    assert fault(api.post(f"invoice/{made['Id']}/send"))[1] == "2020"  # no sendTo, no BillEmail
    assert fault(api.post(f"invoice/{made['Id']}/send", params={"sendTo": "nope"}))[1] == "2010"


def test_requestid_replays_a_snapshot_of_the_original_answer(
    sandbox: QuickBooksSandbox, api: httpx.Client
) -> None:
    created = api.post(
        "invoice",
        params={"requestid": "r-1"},
        json={
            "CustomerRef": {"value": "1"},
            "BillEmail": {"Address": "a@b.co"},
            "Line": [{"Amount": 3, "DetailType": "SalesItemLineDetail"}],
        },
    )
    invoice_id = created.json()["Invoice"]["Id"]
    api.post(f"invoice/{invoice_id}/send", params={"requestid": "r-2"})
    replayed = api.post("invoice", params={"requestid": "r-1"}, json={"whatever": True})
    assert replayed.json() == created.json()
    assert replayed.json()["Invoice"]["EmailStatus"] == "NotSet"  # as first answered
    assert sandbox.invoices[invoice_id]["EmailStatus"] == "EmailSent"
    failed = api.post("customer", params={"requestid": "r-3"}, json={})
    assert fault(failed)[1] == "2020"
    assert api.post("customer", params={"requestid": "r-3"}, json={"DisplayName": "Z"}).json() == (
        failed.json()
    )  # a fault is replayed as well
    too_long = api.post("invoice", params={"requestid": "r" * 51}, json={})
    assert fault(too_long)[1:4:2] == ("2010", "requestid can have a maximum of 50 characters")


def test_fault_knobs_are_consumed_in_order(sandbox: QuickBooksSandbox, api: httpx.Client) -> None:
    sandbox.fail_next(1, status=429, retry_after=2.5)
    sandbox.fail_next(1, status=500)
    sandbox.malformed_next()
    throttled = api.get("customer/1")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2.5"
    assert throttled.json()["Fault"]["Error"][0]["code"] == "3001"
    assert api.get("customer/1").status_code == 500
    garbled = api.get("customer/1")
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()
    assert api.get("customer/1").json()["Customer"]["Id"] == "1"
    sandbox.drop_after_write()
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("customer", json={"DisplayName": "Dropped"})
    assert any(c["DisplayName"] == "Dropped" for c in sandbox.customers.values())


def test_create_app_is_seeded() -> None:
    app = create_app(seed=4, realm_id="42")
    sandbox = app[SANDBOX_KEY]
    assert sandbox.realm_id == "42" and len(sandbox.customers) == 4 and len(sandbox.items) == 5
