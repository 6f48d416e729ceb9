"""The Stripe stand-in over real HTTP: auth, idempotency, pagination, filters, faults."""

from __future__ import annotations

import base64
import threading
import time

import httpx
import pytest

from flowkit.sandbox.server import serve_in_thread
from flowkit.sandbox.stripe import StripeError, StripeSandbox, decode_form

from .conftest import FakeClock, StripeFixture

CHARGE = {"amount": "2000", "currency": "usd", "source": "tok_visa", "description": "Mug"}


def post(stripe: StripeFixture, path: str, data: dict[str, str], key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return stripe.client.post(path, data=data, headers=headers)


# ---------------------------------------------------------------------- form decoding


def test_decode_form_nests_hashes_and_arrays() -> None:
    pairs = [
        ("amount", "100"),
        ("metadata[order]", "A-1"),
        ("metadata[note]", ""),
        ("expand[]", "customer"),
        ("expand[]", "payment_intent"),
        ("created[gte]", "5"),
    ]
    assert decode_form(pairs) == {
        "amount": "100",
        "metadata": {"order": "A-1", "note": ""},
        "expand": ["customer", "payment_intent"],
        "created": {"gte": "5"},
    }


@pytest.mark.parametrize("pairs", [[("a[]b", "1")], [("a", "1"), ("a[b]", "2")], [("a[][b]", "")]])
def test_decode_form_rejects_malformed_names(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(StripeError) as info:
        decode_form(pairs)
    assert info.value.status == 400


# ---------------------------------------------------------------------- auth


def test_wrong_key_is_401_with_stripe_body(stripe: StripeFixture, http: httpx.Client) -> None:
    response = http.get(stripe.url + "/v1/charges", auth=("sk_test_wrong123", ""))
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "type": "invalid_request_error",
            "message": "Invalid API Key provided: sk_test_****",
        }
    }


def test_missing_key_is_401_and_bearer_works(stripe: StripeFixture, http: httpx.Client) -> None:
    missing = http.get(stripe.url + "/v1/charges")
    assert missing.status_code == 401
    assert "did not provide an API key" in missing.json()["error"]["message"]
    bearer = http.get(
        stripe.url + "/v1/charges",
        headers={"Authorization": f"Bearer {stripe.sandbox.api_key}"},
    )
    assert bearer.status_code == 200
    garbage = http.get(stripe.url + "/v1/charges", headers={"Authorization": "Basic !!!"})
    assert garbage.status_code == 401


# ---------------------------------------------------------------------- idempotency


def test_same_key_same_params_replays_first_response(stripe: StripeFixture) -> None:
    first = post(stripe, "/v1/charges", CHARGE, key="order-1")
    again = post(stripe, "/v1/charges", CHARGE, key="order-1")
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Original-Request"] == first.headers["Request-Id"]
    assert again.json() == first.json()
    assert len(stripe.sandbox.charges) == 1
    assert [e.idempotency_key for e in stripe.sandbox.ledger] == ["order-1"]


def test_same_key_other_params_is_idempotency_error(stripe: StripeFixture) -> None:
    assert post(stripe, "/v1/charges", CHARGE, key="k-7").status_code == 200
    other = post(stripe, "/v1/charges", {**CHARGE, "amount": "2100"}, key="k-7")
    assert other.status_code == 400
    assert other.json() == {
        "error": {
            "type": "idempotency_error",
            "message": "Keys for idempotent requests can only be used with the same parameters "
            "they were first used with. Try using a key other than 'k-7' if you meant to "
            "execute a different request.",
        }
    }
    assert len(stripe.sandbox.charges) == 1


def test_same_key_other_endpoint_is_idempotency_error(stripe: StripeFixture) -> None:
    assert post(stripe, "/v1/charges", CHARGE, key="k-8").status_code == 200
    other = post(stripe, "/v1/customers", {"email": "x@example.com"}, key="k-8")
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert "same endpoint" in other.json()["error"]["message"]


def test_validation_failures_are_not_saved_under_the_key(stripe: StripeFixture) -> None:
    bad = post(stripe, "/v1/charges", {"amount": "2000", "source": "tok_visa"}, key="k-9")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "parameter_missing"
    good = post(stripe, "/v1/charges", CHARGE, key="k-9")
    assert good.status_code == 200
    assert "Idempotent-Replayed" not in good.headers


def test_card_decline_is_saved_and_replayed(stripe: StripeFixture) -> None:
    declined = {**CHARGE, "source": "tok_chargeDeclined"}
    first = post(stripe, "/v1/charges", declined, key="k-10")
    assert first.status_code == 402
    assert first.json()["error"]["type"] == "card_error"
    assert first.json()["error"]["decline_code"] == "generic_decline"
    again = post(stripe, "/v1/charges", declined, key="k-10")
    assert again.status_code == 402
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [c["status"] for c in stripe.sandbox.charges.values()] == ["failed"]


def test_key_in_flight_is_409(stripe: StripeFixture) -> None:
    stripe.sandbox.faults.latency_ms = 400
    results: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: results.append(post(stripe, "/v1/charges", CHARGE, key="busy"))
    )
    first.start()
    deadline = time.monotonic() + 5
    while not stripe.sandbox._saved and time.monotonic() < deadline:
        time.sleep(0.005)
    with httpx.Client(
        base_url=stripe.url, auth=(stripe.sandbox.api_key, ""), verify=False
    ) as other:
        clash = other.post("/v1/charges", data=CHARGE, headers={"Idempotency-Key": "busy"})
    first.join()
    assert clash.status_code == 409
    assert clash.json()["error"]["type"] == "idempotency_error"
    assert results[0].status_code == 200
    assert len(stripe.sandbox.charges) == 1


def test_keys_expire_after_24_hours(stripe: StripeFixture, clock: FakeClock) -> None:
    first = post(stripe, "/v1/charges", CHARGE, key="old")
    clock.advance(24 * 3600 + 1)
    later = post(stripe, "/v1/charges", CHARGE, key="old")
    assert later.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in later.headers


def test_get_ignores_idempotency_key(stripe: StripeFixture) -> None:
    post(stripe, "/v1/charges", CHARGE, key="g")
    listed = stripe.client.get("/v1/charges", headers={"Idempotency-Key": "g"})
    assert listed.status_code == 200
    assert "Idempotent-Replayed" not in listed.headers


# ---------------------------------------------------------------------- lists


def make_charges(stripe: StripeFixture, clock: FakeClock, n: int) -> list[str]:
    ids = []
    for i in range(n):
        clock.advance(10)
        created = post(stripe, "/v1/charges", {**CHARGE, "description": f"#{i}"})
        ids.append(created.json()["id"])
    return ids


def test_list_is_newest_first_and_pages_with_starting_after(
    stripe: StripeFixture, clock: FakeClock
) -> None:
    ids = make_charges(stripe, clock, 23)
    seen: list[str] = []
    params: dict[str, str] = {"limit": "10"}
    pages = 0
    while True:
        page = stripe.client.get("/v1/charges", params=params).json()
        assert page["object"] == "list"
        assert page["url"] == "/v1/charges"
        seen += [c["id"] for c in page["data"]]
        pages += 1
        if not page["has_more"]:
            break
        params["starting_after"] = page["data"][-1]["id"]
    assert pages == 3
    assert seen == list(reversed(ids))


def test_ending_before_returns_the_previous_page(stripe: StripeFixture, clock: FakeClock) -> None:
    ids = list(reversed(make_charges(stripe, clock, 12)))  # newest first
    page = stripe.client.get("/v1/charges", params={"limit": 3, "ending_before": ids[6]}).json()
    assert [c["id"] for c in page["data"]] == ids[3:6]
    assert page["has_more"] is True
    top = stripe.client.get("/v1/charges", params={"limit": 5, "ending_before": ids[2]}).json()
    assert [c["id"] for c in top["data"]] == ids[0:2]
    assert top["has_more"] is False


def test_same_second_objects_keep_creation_order(stripe: StripeFixture) -> None:
    ids = [post(stripe, "/v1/charges", CHARGE).json()["id"] for _ in range(4)]
    listed = stripe.client.get("/v1/charges", params={"limit": 2}).json()
    rest = stripe.client.get(
        "/v1/charges", params={"starting_after": listed["data"][-1]["id"]}
    ).json()
    assert [c["id"] for c in listed["data"] + rest["data"]] == list(reversed(ids))


def test_created_filters(stripe: StripeFixture, clock: FakeClock) -> None:
    make_charges(stripe, clock, 5)
    stamps = sorted(c["created"] for c in stripe.sandbox.charges.values())

    def count(**params: int) -> int:
        query = {f"created[{op}]": str(value) for op, value in params.items()}
        return len(stripe.client.get("/v1/charges", params=query).json()["data"])

    assert count(gt=stamps[1]) == 3
    assert count(gte=stamps[1]) == 4
    assert count(lt=stamps[1]) == 1
    assert count(lte=stamps[1]) == 2
    assert count(gt=stamps[0], lt=stamps[4]) == 3
    exact = stripe.client.get("/v1/charges", params={"created": str(stamps[2])}).json()
    assert len(exact["data"]) == 1


def test_list_parameter_errors(stripe: StripeFixture) -> None:
    too_many = stripe.client.get("/v1/charges", params={"limit": "101"})
    assert too_many.status_code == 400
    assert too_many.json()["error"]["param"] == "limit"
    both = stripe.client.get("/v1/charges", params={"starting_after": "a", "ending_before": "b"})
    assert both.status_code == 400
    unknown = stripe.client.get("/v1/charges", params={"starting_after": "ch_nope"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "resource_missing"
    bad_filter = stripe.client.get("/v1/charges", params={"created[after]": "1"})
    assert bad_filter.status_code == 400
    stray = stripe.client.get("/v1/charges", params={"colour": "red"})
    assert stray.json()["error"]["message"] == "Received unknown parameter: colour"


def test_list_filters_by_customer_and_expands(stripe: StripeFixture) -> None:
    customer = post(stripe, "/v1/customers", {"email": "ada@example.com", "name": "Ada"}).json()
    post(stripe, "/v1/charges", {**CHARGE, "customer": customer["id"]})
    post(stripe, "/v1/charges", CHARGE)
    listed = stripe.client.get(
        "/v1/charges", params={"customer": customer["id"], "expand[]": "data.customer"}
    ).json()
    assert len(listed["data"]) == 1
    charge = listed["data"][0]
    assert charge["customer"]["email"] == "ada@example.com"
    assert charge["billing_details"]["email"] == "ada@example.com"
    assert charge["receipt_email"] == "ada@example.com"
    assert stripe.sandbox.charges[charge["id"]]["customer"] == customer["id"]  # not mutated
    one = stripe.client.get(f"/v1/charges/{charge['id']}", params={"expand[]": "customer"})
    assert one.json()["customer"]["id"] == customer["id"]
    wrong = stripe.client.get(f"/v1/charges/{charge['id']}", params={"expand[]": "amount"})
    assert wrong.status_code == 400


# ---------------------------------------------------------------------- updates


def test_metadata_merges_and_empty_value_unsets(stripe: StripeFixture) -> None:
    charge = post(stripe, "/v1/charges", {**CHARGE, "metadata[order]": "A-1"}).json()
    path = f"/v1/charges/{charge['id']}"
    merged = post(stripe, path, {"metadata[invoice]": "INV-9", "metadata[note]": "x"}).json()
    assert merged["metadata"] == {"order": "A-1", "invoice": "INV-9", "note": "x"}
    unset = post(stripe, path, {"metadata[note]": ""}).json()
    assert unset["metadata"] == {"order": "A-1", "invoice": "INV-9"}
    assert stripe.client.get(path).json()["metadata"] == unset["metadata"]
    cleared = post(stripe, path, {"metadata": ""}).json()
    assert cleared["metadata"] == {}
    assert [c["id"] for c in stripe.sandbox.marked_charges()] == [charge["id"]]


def test_update_of_unknown_charge_is_404(stripe: StripeFixture) -> None:
    missing = post(stripe, "/v1/charges/ch_missing", {"metadata[a]": "b"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert missing.json()["error"]["message"] == "No such charge: 'ch_missing'"


def test_json_bodies_and_unknown_routes_are_refused(stripe: StripeFixture) -> None:
    as_json = stripe.client.post("/v1/charges", json={"amount": 2000, "currency": "usd"})
    assert as_json.status_code == 400
    assert "x-www-form-urlencoded" in as_json.json()["error"]["message"]
    nowhere = stripe.client.get("/v1/invoices/in_1")
    assert nowhere.status_code == 404
    assert "Unrecognized request URL" in nowhere.json()["error"]["message"]


def test_customers_create_get_update_list(stripe: StripeFixture) -> None:
    created = post(stripe, "/v1/customers", {"email": "b@example.com", "name": "Ben"}).json()
    path = f"/v1/customers/{created['id']}"
    assert stripe.client.get(path).json()["email"] == "b@example.com"
    updated = post(stripe, path, {"name": "Benjamin", "metadata[tier]": "gold"}).json()
    assert (updated["name"], updated["metadata"]) == ("Benjamin", {"tier": "gold"})
    post(stripe, "/v1/customers", {"email": "c@example.com"})
    only = stripe.client.get("/v1/customers", params={"email": "b@example.com"}).json()
    assert [c["id"] for c in only["data"]] == [created["id"]]


# ---------------------------------------------------------------------- payment intents


def test_payment_intent_confirmed_on_create_makes_a_charge(stripe: StripeFixture) -> None:
    intent = post(
        stripe,
        "/v1/payment_intents",
        {"amount": "1500", "currency": "eur", "payment_method": "pm_card_visa",
         "confirm": "true", "receipt_email": "r@example.com", "metadata[order]": "7"},
        key="pi-1",
    ).json()  # fmt: skip
    assert intent["status"] == "succeeded"
    assert intent["amount_received"] == 1500
    charge = stripe.sandbox.charges[intent["latest_charge"]]
    assert (charge["payment_intent"], charge["receipt_email"]) == (intent["id"], "r@example.com")
    listed = stripe.client.get("/v1/charges", params={"payment_intent": intent["id"]}).json()
    assert [c["id"] for c in listed["data"]] == [charge["id"]]
    fetched = stripe.client.get(
        f"/v1/payment_intents/{intent['id']}", params={"expand[]": "latest_charge"}
    ).json()
    assert fetched["latest_charge"]["id"] == charge["id"]
    assert len(stripe.client.get("/v1/payment_intents").json()["data"]) == 1


def test_payment_intent_decline_and_later_confirm(stripe: StripeFixture) -> None:
    declined = post(
        stripe,
        "/v1/payment_intents",
        {"amount": "900", "currency": "usd", "payment_method": "pm_card_chargeDeclined",
         "confirm": "true"},
    )  # fmt: skip
    assert declined.status_code == 402
    error = declined.json()["error"]
    assert error["payment_intent"]["status"] == "requires_payment_method"
    pid = error["payment_intent"]["id"]
    confirmed = post(stripe, f"/v1/payment_intents/{pid}/confirm", {"payment_method": "tok_visa"})
    assert confirmed.json()["status"] == "succeeded"
    again = post(stripe, f"/v1/payment_intents/{pid}/confirm", {})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"


def test_unconfirmed_payment_intent_waits_for_confirmation(stripe: StripeFixture) -> None:
    intent = post(stripe, "/v1/payment_intents", {"amount": "900", "currency": "usd"}).json()
    assert intent["status"] == "requires_payment_method"
    assert intent["latest_charge"] is None
    updated = post(stripe, f"/v1/payment_intents/{intent['id']}", {"description": "x"}).json()
    assert updated["description"] == "x"


# ---------------------------------------------------------------------- refunds


def test_refunds_partial_full_and_already_refunded(stripe: StripeFixture) -> None:
    charge = post(stripe, "/v1/charges", CHARGE).json()
    partial = post(stripe, "/v1/refunds", {"charge": charge["id"], "amount": "500"}).json()
    assert (partial["amount"], partial["status"]) == (500, "succeeded")
    too_much = post(stripe, "/v1/refunds", {"charge": charge["id"], "amount": "1600"})
    assert too_much.json()["error"]["code"] == "amount_too_large"
    rest = post(stripe, "/v1/refunds", {"charge": charge["id"]}).json()
    assert rest["amount"] == 1500
    refunded = stripe.client.get(f"/v1/charges/{charge['id']}").json()
    assert (refunded["amount_refunded"], refunded["refunded"]) == (2000, True)
    again = post(stripe, "/v1/refunds", {"charge": charge["id"]})
    assert again.json()["error"]["code"] == "charge_already_refunded"
    listed = stripe.client.get("/v1/refunds", params={"charge": charge["id"]}).json()
    assert [r["id"] for r in listed["data"]] == [rest["id"], partial["id"]]
    assert stripe.client.get(f"/v1/refunds/{rest['id']}").json()["charge"] == charge["id"]
    neither = post(stripe, "/v1/refunds", {"amount": "1"})
    assert neither.json()["error"]["code"] == "parameter_missing"


# ---------------------------------------------------------------------- faults


def test_drop_after_apply_applies_once_and_client_sees_a_disconnect(
    stripe: StripeFixture,
) -> None:
    stripe.sandbox.faults.drop_after_apply_next = 1
    with pytest.raises(httpx.RemoteProtocolError):
        post(stripe, "/v1/charges", CHARGE, key="crash-1")
    assert len(stripe.sandbox.charges) == 1
    retried = post(stripe, "/v1/charges", CHARGE, key="crash-1")
    assert retried.status_code == 200
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["id"] == next(iter(stripe.sandbox.charges))
    assert len(stripe.sandbox.charges) == 1
    assert len(stripe.sandbox.effects("/v1/charges")) == 1


def test_drop_before_apply_applies_nothing(stripe: StripeFixture) -> None:
    stripe.sandbox.faults.drop_before_apply_next = 1
    with pytest.raises(httpx.RemoteProtocolError):
        post(stripe, "/v1/charges", CHARGE, key="crash-2")
    assert stripe.sandbox.charges == {}
    assert stripe.sandbox.ledger == []
    retried = post(stripe, "/v1/charges", CHARGE, key="crash-2")
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert len(stripe.sandbox.ledger) == 1


def test_fault_endpoint_injects_429_then_503_with_retry_after(
    stripe: StripeFixture, http: httpx.Client
) -> None:
    set_faults = http.post(
        stripe.url + "/_sandbox/faults",
        json={"fail_next": 2, "fail_status": 429, "retry_after": 3, "match": "POST /v1/charges"},
    )
    assert set_faults.status_code == 200
    assert stripe.client.get("/v1/charges").status_code == 200  # not matched
    throttled = post(stripe, "/v1/charges", CHARGE, key="t")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "3"
    assert throttled.json()["error"]["code"] == "rate_limit"
    assert post(stripe, "/v1/charges", CHARGE, key="t").status_code == 429
    assert post(stripe, "/v1/charges", CHARGE, key="t").status_code == 200
    assert len(stripe.sandbox.charges) == 1

    stripe.sandbox.fail_next(1, status=503, retry_after=None)
    unavailable = stripe.client.get("/v1/charges")
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["type"] == "api_error"
    assert "Retry-After" not in unavailable.headers
    state = http.get(stripe.url + "/_sandbox/faults").json()
    assert state["fail_next"] == 0
    bad = http.post(stripe.url + "/_sandbox/faults", json={"explode": 1})
    assert bad.status_code == 400
    assert "unknown fault knob" in bad.json()["error"]


def test_malformed_body_is_processed_but_unreadable(
    stripe: StripeFixture, http: httpx.Client
) -> None:
    http.post(stripe.url + "/_sandbox/faults", json={"malformed_next": 1})
    broken = post(stripe, "/v1/charges", CHARGE, key="m")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    assert len(stripe.sandbox.charges) == 1
    assert post(stripe, "/v1/charges", CHARGE, key="m").headers["Idempotent-Replayed"] == "true"
    http.delete(stripe.url + "/_sandbox/faults")
    ledger = http.get(stripe.url + "/_sandbox/ledger").json()
    assert [(e["method"], e["path"], e["idempotency_key"]) for e in ledger] == [
        ("POST", "/v1/charges", "m")
    ]


# ---------------------------------------------------------------------- seeding


def test_seed_is_deterministic_and_realistic(clock: FakeClock) -> None:
    one, two = StripeSandbox(clock=clock, rng_seed=7), StripeSandbox(clock=clock, rng_seed=7)
    first, second = one.seed(4), two.seed(4)
    assert first == second
    assert [c["id"] for c in first] != [c["id"] for c in StripeSandbox(clock=clock).seed(4)]
    for charge in first:
        assert charge["status"] == "succeeded" and charge["paid"]
        assert charge["receipt_email"].endswith("@example.com")
        assert charge["billing_details"]["email"] == charge["receipt_email"]
        assert charge["billing_details"]["name"]
        assert charge["amount"] >= 1200 and charge["description"].startswith("Order #")
        assert one.customers[charge["customer"]]["email"] == charge["receipt_email"]
    assert [c["created"] for c in first] == sorted(c["created"] for c in first)
    assert one.summary()["charges"] == 4
    assert one.ledger == []  # seeding is not an effect


def test_seeded_sandbox_lists_newest_first_over_http(clock: FakeClock, http: httpx.Client) -> None:
    sandbox = StripeSandbox(clock=clock)
    seeded = sandbox.seed(3)
    token = base64.b64encode(f"{sandbox.api_key}:".encode()).decode()
    with serve_in_thread(sandbox.app) as handle:
        listed = http.get(
            handle.url + "/v1/charges", headers={"Authorization": f"Basic {token}"}
        ).json()
    assert [c["id"] for c in listed["data"]] == [c["id"] for c in reversed(seeded)]


def test_drop_after_apply_waits_for_a_request_that_applies(stripe: StripeFixture) -> None:
    stripe.sandbox.faults.drop_after_apply_next = 1
    invalid = post(stripe, "/v1/charges", {"amount": "10", "currency": "usd"}, key="v")
    assert invalid.status_code == 400  # nothing applied: answered normally
    bad_expand = post(stripe, "/v1/charges", {**CHARGE, "expand[]": "amount"}, key="e")
    assert bad_expand.status_code == 400
    assert stripe.sandbox.charges == {}
    with pytest.raises(httpx.RemoteProtocolError):
        post(stripe, "/v1/charges", CHARGE)
    assert len(stripe.sandbox.ledger) == 1
