"""The quickbooks connector against the QuickBooks sandbox over real loopback HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from flowkit.connectors.base import CallContext, Effect, Idempotency
from flowkit.connectors.quickbooks import (
    CreateInvoiceInput,
    Invoice,
    QueryInput,
    connector,
    quote,
    request_id,
)
from flowkit.connectors.quickbooks.session import QuickBooksSession
from flowkit.errors import ConnectorError, ErrorKind
from flowkit.sandbox.quickbooks import QuickBooksSandbox, SentInvoice


def test_actions_declare_effects_and_idempotency() -> None:
    declared = {n: (a.effect, a.idempotency) for n, a in connector.actions.items()}
    assert declared == {
        "find_customer": (Effect.READ, Idempotency.NONE),
        "create_customer": (Effect.WRITE, Idempotency.HEADER),
        "find_or_create_customer": (Effect.WRITE, Idempotency.HEADER),
        "create_invoice": (Effect.WRITE, Idempotency.HEADER),
        "send_invoice": (Effect.NOTIFY, Idempotency.HEADER),
        "get_invoice": (Effect.READ, Idempotency.NONE),
        "query": (Effect.READ, Idempotency.NONE),
    }
    assert all(a.retry_safe for a in connector.actions.values())


async def test_find_customer_by_email(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    known = sandbox.customers["2"]
    email = known["PrimaryEmailAddr"]["Address"]
    hit = await run(session, "find_customer", email=email.upper())
    assert hit.found and hit.customer.Id == "2"
    assert hit.customer.DisplayName == known["DisplayName"]
    miss = await run(session, "find_customer", email="nobody@example.com")
    assert not miss.found and miss.customer is None


async def test_find_or_create_returns_the_existing_customer(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    email = sandbox.customers["1"]["PrimaryEmailAddr"]["Address"]
    out = await run(session, "find_or_create_customer", email=email, display_name="Other Name")
    assert (out.created, out.customer_id) == (False, "1")
    assert len(sandbox.customers) == 3
    assert not [r for r in sandbox.requests if r.method == "POST"]


async def test_find_or_create_creates_a_missing_customer_once(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    data = {"email": "nora.quinn@example.com", "given_name": "Nora", "family_name": "Quinn"}
    out = await run(session, "find_or_create_customer", key="fk-cust-1", **data)
    assert out.created
    stored = sandbox.customers[out.customer_id]
    assert stored["DisplayName"] == "Nora Quinn"
    assert stored["PrimaryEmailAddr"] == {"Address": "nora.quinn@example.com"}
    assert sandbox.request_ids == ["fk-cust-1"]
    again = await run(session, "find_or_create_customer", key="fk-cust-1", **data)
    assert (again.created, again.customer_id) == (False, out.customer_id)
    assert len(sandbox.customers) == 4


async def test_find_or_create_suffixes_a_display_name_taken_by_someone_else(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    taken = sandbox.customers["2"]["DisplayName"]
    out = await run(
        session,
        "find_or_create_customer",
        key="fk-dup",
        email="b.k@example.org",
        display_name=taken,
    )
    assert out.created
    assert out.customer.DisplayName == f"{taken} (b.k@example.org)"
    posts = [r.request_id for r in sandbox.requests if r.method == "POST"]
    assert posts == ["fk-dup", "fk-dup.c1"]  # the 6240 answer is not replayed for the retry


async def test_create_customer_duplicate_name_is_conflict_with_quickbooks_words(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, no_secrets: Any
) -> None:
    with pytest.raises(ConnectorError) as caught:
        await run(session, "create_customer", display_name=sandbox.customers["1"]["DisplayName"])
    err = caught.value
    assert err.kind is ErrorKind.CONFLICT and err.status == 400
    assert "Duplicate Name Exists Error" in err.message and "(code 6240)" in err.message
    assert "already using this name" in err.message
    no_secrets(err)


async def test_create_invoice_and_send_it(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    customer = await run(
        session, "find_or_create_customer", key="fk-c", email="ada@example.com", given_name="Ada"
    )
    lines = [
        {"amount": "25.50", "description": "Linen apron", "item_id": "5", "quantity": 3},
        {"amount": 4.5, "description": "Gift wrap"},
    ]
    invoice = await run(
        session,
        "create_invoice",
        key="fk-inv",
        customer_id=customer.customer_id,
        lines=lines,
        doc_number="ch_3PX",
        private_note="Stripe charge ch_3PX",
        memo="Thank you!",
        bill_email="ada@example.com",
        due_date="2030-01-31",
    )
    assert isinstance(invoice, Invoice)
    assert (invoice.DocNumber, invoice.TotalAmt, invoice.EmailStatus) == ("ch_3PX", 30.0, "NotSet")
    assert invoice.DueDate == "2030-01-31"
    stored = sandbox.invoices[invoice.Id]
    assert stored["PrivateNote"] == "Stripe charge ch_3PX"
    assert stored["CustomerMemo"] == {"value": "Thank you!"}
    first, second = stored["Line"][:2]
    assert first["SalesItemLineDetail"]["ItemRef"] == {"value": "5", "name": "Linen apron"}
    assert first["SalesItemLineDetail"]["Qty"] == 3
    assert second["SalesItemLineDetail"]["ItemRef"]["name"] == "Services"  # default item

    sent = await run(session, "send_invoice", key="fk-send", invoice_id=invoice.Id, to="a@ex.io")
    assert sent.EmailStatus == "EmailSent" and sent.BillEmail.Address == "a@ex.io"
    assert sandbox.sent == [SentInvoice(invoice.Id, "a@ex.io", "fk-send")]
    read = await run(session, "get_invoice", invoice_id=invoice.Id)
    assert read.EmailStatus == "EmailSent"
    assert read.model_extra and read.model_extra["DeliveryInfo"]["DeliveryType"] == "Email"
    minor = {r.minor_version for r in sandbox.requests}
    assert minor == {"75"}


async def test_same_idempotency_key_creates_one_invoice(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    data = {"customer_id": "1", "lines": [{"amount": 12}]}
    first = await run(session, "create_invoice", key="fk-same", **data)
    second = await run(session, "create_invoice", key="fk-same", **data)
    assert first.Id == second.Id and first.DocNumber == second.DocNumber
    assert len(sandbox.created_invoices) == 1
    assert sandbox.request_ids == ["fk-same", "fk-same"]
    await run(session, "send_invoice", key="fk-mail", invoice_id=first.Id, to="z@ex.io")
    await run(session, "send_invoice", key="fk-mail", invoice_id=first.Id, to="z@ex.io")
    assert len(sandbox.sent) == 1


async def test_dropped_connection_after_a_write_is_maybe_sent_and_retry_replays(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, no_secrets: Any
) -> None:
    sandbox.drop_after_write()
    data = {"customer_id": "2", "lines": [{"amount": 99.99}]}
    with pytest.raises(ConnectorError) as caught:
        await run(session, "create_invoice", key="fk-drop", **data)
    assert caught.value.maybe_sent and caught.value.kind is ErrorKind.TRANSIENT
    no_secrets(caught.value)
    assert len(sandbox.created_invoices) == 1  # the write happened
    retried = await run(session, "create_invoice", key="fk-drop", **data)
    assert retried.Id == sandbox.created_invoices[0]["Id"]
    assert len(sandbox.created_invoices) == 1


async def test_expired_access_token_is_refreshed_once_and_the_call_replayed(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, runtime: Any
) -> None:
    await run(session, "find_customer", email="x@example.com")
    assert sandbox.token_requests == 1
    sandbox.expire_access_tokens()
    line = {"amount": 1, "item_id": "1"}
    out = await run(session, "create_invoice", key="fk-401", customer_id="1", lines=[line])
    assert out.TotalAmt == 1
    assert sandbox.token_requests == 2
    assert len(sandbox.created_invoices) == 1
    replayed = [(r.method, r.path.rsplit("/", 1)[-1], r.request_id) for r in sandbox.requests[-2:]]
    assert replayed == [("POST", "invoice", "fk-401")] * 2  # the 401, then the replay
    issued = [t for t in sandbox.access_tokens]
    assert all(token in runtime.secrets for token in issued)  # every token is masked


async def test_rotated_refresh_token_is_persisted_and_used_by_the_next_session(
    make_settings: Any, sandbox: QuickBooksSandbox, kv: Any, runtime: Any, run: Any
) -> None:
    configured = sandbox.current_refresh_token
    settings = make_settings()
    first = await connector.open(settings, runtime)
    await run(first, "find_customer", email="x@example.com")
    await connector.close(first)
    rotated = sandbox.current_refresh_token
    assert rotated != configured
    assert list(kv.data.values()) == [rotated]
    assert rotated in runtime.secrets

    second = await connector.open(settings, runtime)  # still configured with the old token
    try:
        out = await run(
            second, "find_customer", email=sandbox.customers["1"]["PrimaryEmailAddr"]["Address"]
        )
    finally:
        await connector.close(second)
    assert out.found
    assert list(kv.data.values()) == [sandbox.current_refresh_token]
    assert sandbox.token_requests == 2

    async with httpx.AsyncClient() as client:  # the configured token no longer works
        answer = await client.post(
            settings.token_url,
            data={"grant_type": "refresh_token", "refresh_token": configured},
            auth=(sandbox.client_id, sandbox.client_secret),
        )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


async def test_a_new_configured_refresh_token_wins_over_an_old_rotated_one(
    make_settings: Any, sandbox: QuickBooksSandbox, kv: Any, runtime: Any, run: Any
) -> None:
    first = await connector.open(make_settings(), runtime)
    await run(first, "find_customer", email="x@example.com")
    await connector.close(first)
    sandbox.revoke_refresh_tokens()  # the user reconnected the app: a brand-new token
    sandbox.refresh_tokens.add("AB11-reconnected")
    second = await connector.open(make_settings(refresh_token="AB11-reconnected"), runtime)
    try:
        assert not (await run(second, "find_customer", email="x@example.com")).found
    finally:
        await connector.close(second)


async def test_failing_refresh_is_auth_error_with_intuits_message(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, no_secrets: Any
) -> None:
    sandbox.revoke_refresh_tokens()
    with pytest.raises(ConnectorError) as caught:
        await run(session, "create_invoice", customer_id="1", lines=[{"amount": 1}])
    err = caught.value
    assert err.kind is ErrorKind.AUTH and not err.maybe_sent
    assert "invalid_grant" in err.message and "Incorrect or invalid refresh token" in err.message
    assert err.hint and "refresh_token" in err.hint
    assert not sandbox.invoices
    no_secrets(err)


async def test_wrong_client_secret_is_auth_error(
    make_settings: Any, runtime: Any, run: Any, no_secrets: Any
) -> None:
    opened = await connector.open(make_settings(client_secret="not-the-secret"), runtime)
    try:
        with pytest.raises(ConnectorError) as caught:
            await run(opened, "find_customer", email="x@example.com")
    finally:
        await connector.close(opened)
    assert caught.value.kind is ErrorKind.AUTH and "invalid_client" in caught.value.message
    assert "not-the-secret" not in caught.value.message
    no_secrets(caught.value)


async def test_throttling_is_rate_limited_with_retry_after(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, no_secrets: Any
) -> None:
    await run(session, "find_customer", email="x@example.com")
    sandbox.fail_next(status=429, retry_after=7)
    with pytest.raises(ConnectorError) as caught:
        await run(session, "create_invoice", customer_id="1", lines=[{"amount": 1}])
    err = caught.value
    assert (err.kind, err.status, err.retry_after) == (ErrorKind.RATE_LIMITED, 429, 7.0)
    assert "ThrottleExceeded" in err.message
    assert not sandbox.invoices
    no_secrets(err)


async def test_service_unavailable_is_transient(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, no_secrets: Any
) -> None:
    sandbox.fail_next(status=503)
    with pytest.raises(ConnectorError) as caught:
        await run(session, "get_invoice", invoice_id="130")
    assert caught.value.kind is ErrorKind.TRANSIENT and caught.value.status == 503
    assert "HTTP 503 from GET /v3/company/" in caught.value.message
    no_secrets(caught.value)


async def test_malformed_json_is_permanent(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, no_secrets: Any
) -> None:
    sandbox.malformed_next(2)
    with pytest.raises(ConnectorError) as read:
        await run(session, "find_customer", email="x@example.com")
    assert read.value.kind is ErrorKind.PERMANENT and not read.value.maybe_sent
    assert "malformed JSON" in read.value.message
    with pytest.raises(ConnectorError) as write:
        await run(session, "create_invoice", customer_id="1", lines=[{"amount": 1, "item_id": "1"}])
    assert write.value.kind is ErrorKind.PERMANENT and write.value.maybe_sent
    no_secrets(write.value)


async def test_validation_fault_keeps_message_and_detail(
    session: QuickBooksSession, run: Any, no_secrets: Any
) -> None:
    with pytest.raises(ConnectorError) as caught:
        await run(session, "create_invoice", customer_id="999", lines=[{"amount": 5}])
    err = caught.value
    assert err.kind is ErrorKind.VALIDATION and err.status == 400
    assert err.message.endswith(
        "Invalid Reference Id: Invalid Reference Id : Customer 999 does not exist (code 2500)"
    )
    no_secrets(err)


async def test_duplicate_doc_number_is_conflict_and_missing_invoice_not_found(
    session: QuickBooksSession, run: Any
) -> None:
    data = {"customer_id": "1", "lines": [{"amount": 5}], "doc_number": "INV-7"}
    await run(session, "create_invoice", key="fk-a", **data)
    with pytest.raises(ConnectorError) as dup:
        await run(session, "create_invoice", key="fk-b", **data)
    assert dup.value.kind is ErrorKind.CONFLICT and "DocNumber=INV-7" in dup.value.message
    with pytest.raises(ConnectorError) as missing:
        await run(session, "get_invoice", invoice_id="424242")
    assert missing.value.kind is ErrorKind.NOT_FOUND and "Object Not Found" in missing.value.message


async def test_unknown_default_item_is_a_validation_error_with_hint(
    make_settings: Any, runtime: Any, run: Any
) -> None:
    opened = await connector.open(make_settings(default_item="Consulting"), runtime)
    try:
        with pytest.raises(ConnectorError) as caught:
            await run(opened, "create_invoice", customer_id="1", lines=[{"amount": 5}])
    finally:
        await connector.close(opened)
    assert caught.value.kind is ErrorKind.VALIDATION
    assert "'Consulting'" in caught.value.message and "default_item" in (caught.value.hint or "")


async def test_read_timeout_is_timeout_and_maybe_sent(
    make_settings: Any, sandbox: QuickBooksSandbox, runtime: Any, run: Any
) -> None:
    opened = await connector.open(make_settings(timeout=0.05), runtime)
    try:
        await run(opened, "find_customer", email="x@example.com")
        sandbox.set_latency(0.3)
        with pytest.raises(ConnectorError) as caught:
            await run(
                opened, "create_invoice", customer_id="1", lines=[{"amount": 5, "item_id": "1"}]
            )
    finally:
        sandbox.set_latency(0)
        await connector.close(opened)
    assert caught.value.kind is ErrorKind.TIMEOUT and caught.value.maybe_sent


async def test_query_follows_startposition_pages(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    sandbox.seed(22)  # 25 customers in all
    out = await run(session, "query", query="select * from Customer orderby Id", page_size=10)
    assert len(out.items) == 25 and len({c["Id"] for c in out.items}) == 25
    pages = [r for r in sandbox.requests if r.path.endswith("/query")]
    assert len(pages) == 3
    limited = await run(session, "query", query="SELECT * FROM Customer", page_size=10, limit=12)
    assert len(limited.items) == 12
    exact = await run(session, "query", query="select * from Item", page_size=5)
    assert len(exact.items) == 5  # a full last page costs one more (empty) request


async def test_query_syntax_error_is_validation(session: QuickBooksSession, run: Any) -> None:
    with pytest.raises(ConnectorError) as caught:
        await run(session, "query", query="select * from Customer where DisplayName = 'x' or")
    assert caught.value.kind is ErrorKind.VALIDATION
    assert "Error parsing query" in caught.value.message and "(code 4000)" in caught.value.message


def test_inputs_are_checked_before_any_call() -> None:
    with pytest.raises(ValidationError, match="select statement"):
        QueryInput(query="delete from Customer")
    with pytest.raises(ValidationError, match="STARTPOSITION"):
        QueryInput(query="select * from Item STARTPOSITION 5")
    with pytest.raises(ValidationError):
        CreateInvoiceInput.model_validate({"customer_id": "1", "lines": []})
    with pytest.raises(ValidationError):
        connector.actions["send_invoice"].Input.model_validate({"invoice_id": "1", "to": "nope"})
    with pytest.raises(ValidationError):
        connector.settings.model_validate(
            {"realm_id": "abc", "client_id": "x", "client_secret": "s", "refresh_token": "r"}
        )


def test_helpers_quote_and_bound_request_ids() -> None:
    assert quote("O'Brien\\x") == "'O\\'Brien\\\\x'"
    assert request_id("fk-abc") == "fk-abc"
    long = request_id("k" * 60)
    assert len(long) <= 50 and long == request_id("k" * 60) and long != request_id("k" * 61)
    assert request_id("fk-abc", "c1") == "fk-abc.c1"


def test_dry_run_outputs_are_plausible() -> None:
    action = connector.actions["create_invoice"]
    data = {"customer_id": "7", "lines": [{"amount": "10.005"}, {"amount": 2}], "doc_number": "D1"}
    simulated = action.simulate(action.Input.model_validate(data), CallContext("fk-0123456789"))
    assert (simulated.TotalAmt, simulated.DocNumber, simulated.Id) == (
        12.01,
        "D1",
        "dryrun-23456789",
    )
    send = connector.actions["send_invoice"]
    out = send.simulate(send.Input.model_validate({"invoice_id": "9"}), CallContext("k"))
    assert out.EmailStatus == "EmailSent"
    for name, act in connector.actions.items():  # every default simulation is valid too
        if name not in ("create_invoice", "send_invoice"):
            assert isinstance(
                act.simulate(act.Input.model_construct(), CallContext("k")), act.Output
            )


async def test_emails_with_plus_and_names_with_quotes_round_trip(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    data = {"email": "o+brien@example.com", "display_name": "O'Brien: Shop \\ Co"}
    made = await run(session, "find_or_create_customer", key="fk-q", **data)
    assert made.created and made.customer.DisplayName == "O'Brien Shop \\ Co"  # no colon allowed
    found = await run(session, "find_customer", email="O+Brien@example.com")
    assert found.found and found.customer.Id == made.customer_id


async def test_every_candidate_name_taken_is_conflict_with_hint(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    await run(session, "create_customer", key="k1", display_name="Bob", email="bob@one.com")
    await run(session, "create_customer", key="k2", display_name="Bob (bob@two.com)")
    with pytest.raises(ConnectorError) as caught:
        await run(session, "find_or_create_customer", email="bob@two.com", display_name="Bob")
    assert caught.value.kind is ErrorKind.CONFLICT and "(code 6240)" in caught.value.message
    assert caught.value.hint and "display_name" in caught.value.hint
    assert len(sandbox.customers) == 5


async def test_a_rejected_stored_token_falls_back_to_the_configured_one_once(
    make_settings: Any, sandbox: QuickBooksSandbox, kv: Any, runtime: Any, run: Any
) -> None:
    configured = sandbox.current_refresh_token
    first = await connector.open(make_settings(), runtime)
    await run(first, "find_customer", email="x@example.com")
    await connector.close(first)
    sandbox.refresh_tokens = {configured}  # a restarted sandbox knows only its initial token
    second = await connector.open(make_settings(), runtime)
    try:
        assert not (await run(second, "find_customer", email="x@example.com")).found
    finally:
        await connector.close(second)
    assert sandbox.token_requests == 3  # rotated one rejected, configured one accepted
    assert list(kv.data.values()) == [sandbox.current_refresh_token]


async def test_fallback_happens_once_and_then_the_auth_error_stands(
    make_settings: Any, sandbox: QuickBooksSandbox, runtime: Any, run: Any, no_secrets: Any
) -> None:
    settings = make_settings()
    first = await connector.open(settings, runtime)
    await run(first, "find_customer", email="x@example.com")
    await connector.close(first)
    sandbox.revoke_refresh_tokens()
    second = await connector.open(settings, runtime)
    try:
        with pytest.raises(ConnectorError) as caught:
            await run(second, "find_customer", email="x@example.com")
        with pytest.raises(ConnectorError):
            await run(second, "find_customer", email="x@example.com")
    finally:
        await connector.close(second)
    assert caught.value.kind is ErrorKind.AUTH and "invalid_grant" in caught.value.message
    assert sandbox.token_requests == 4  # 1 + (stored, configured) + configured again
    no_secrets(caught.value)


async def test_concurrent_find_or_create_for_one_email_yields_one_customer(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any
) -> None:
    data = {"email": "twin@example.com", "display_name": "Twin Shop"}
    one, two = await asyncio.gather(
        run(session, "find_or_create_customer", key="fk-t1", **data),
        run(session, "find_or_create_customer", key="fk-t2", **data),
    )
    assert one.customer_id == two.customer_id
    assert sorted([one.created, two.created]) == [False, True]
    assert [c["DisplayName"] for c in sandbox.customers.values()].count("Twin Shop") == 1
    assert len(sandbox.customers) == 4


async def test_duplicate_name_held_by_the_same_email_is_reused(
    session: QuickBooksSession, sandbox: QuickBooksSandbox, run: Any, monkeypatch: Any
) -> None:
    # The email lookup misses (a concurrent create, or a lagging query index); the create then
    # hits 6240 and the holder of the name turns out to be this very customer.
    real = QuickBooksSession.customers_by

    async def lagging(self: QuickBooksSession, condition: str) -> Any:
        return [] if condition.startswith("PrimaryEmailAddr") else await real(self, condition)

    monkeypatch.setattr(QuickBooksSession, "customers_by", lagging)
    known = sandbox.customers["3"]
    data = {"email": known["PrimaryEmailAddr"]["Address"], "display_name": known["DisplayName"]}
    out = await run(session, "find_or_create_customer", key="fk-lag", **data)
    assert (out.created, out.customer_id) == (False, "3")
    assert len(sandbox.customers) == 3
