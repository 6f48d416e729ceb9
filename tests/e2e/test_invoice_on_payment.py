"""recipes/invoice-on-payment.yaml end to end against the sandbox (Stripe, QuickBooks, mail)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from flowkit.errors import ExitCode
from flowkit.sandbox.runner import Sandbox
from flowkit.state.base import ItemStatus

from .conftest import CRASH_EXIT, Cli, Flow, explain, recipe

RECIPE = recipe("invoice-on-payment")
NAME = "invoice-on-payment"


def charges(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in sandbox.stripe.charges.values() if c["status"] == "succeeded"}


def invoices_by_charge(sandbox: Sandbox) -> Counter[str]:
    """How many QuickBooks invoices name each charge id in their PrivateNote."""
    assert sandbox.quickbooks is not None
    counts: Counter[str] = Counter()
    for invoice in sandbox.quickbooks.created_invoices:
        note = str(invoice.get("PrivateNote", ""))
        assert note.startswith("Stripe charge ch_"), note
        counts[note.removeprefix("Stripe charge ")] += 1
    return counts


def metadata_writes(sandbox: Sandbox) -> Counter[str]:
    """Applied `POST /v1/charges/{id}` writes per charge (the Stripe ledger)."""
    return Counter(e.object_id for e in sandbox.stripe.effects("/v1/charges/"))


def assert_exactly_once(sandbox: Sandbox) -> None:
    """Every seeded payment: one invoice, one email (by Message-ID), one metadata write."""
    paid = charges(sandbox)
    assert invoices_by_charge(sandbox) == Counter(dict.fromkeys(paid, 1))
    assert metadata_writes(sandbox) == Counter(dict.fromkeys(paid, 1))
    emails = sandbox.mail.unique()
    assert len(emails) == len(paid)
    references = Counter(
        line.removeprefix("Payment reference: ")
        for mail in emails
        for line in (mail.text or "").splitlines()
        if line.startswith("Payment reference: ")
    )
    assert references == Counter(dict.fromkeys(paid, 1))
    assert sandbox.quickbooks is not None
    by_id = {inv["Id"]: inv for inv in sandbox.quickbooks.created_invoices}
    for charge in paid.values():
        invoice = by_id[charge["metadata"]["qbo_invoice_id"]]
        assert invoice["PrivateNote"] == f"Stripe charge {charge['id']}"
        assert charge["metadata"]["qbo_invoice_number"] == invoice["DocNumber"]


# -- in-process -------------------------------------------------------------------------------


async def test_first_run_invoices_emails_and_marks_every_payment(flow: Flow) -> None:
    box = flow.sandbox
    paid = charges(box)
    assert len(paid) == 3
    summary = await flow.run(RECIPE)
    assert summary.exit_code is ExitCode.OK, summary.errors
    assert (summary.new, summary.done, summary.failed) == (3, 3, 0)
    assert_exactly_once(box)

    assert box.quickbooks is not None
    by_note = {inv["PrivateNote"]: inv for inv in box.quickbooks.created_invoices}
    for charge in paid.values():
        invoice = by_note[f"Stripe charge {charge['id']}"]
        assert invoice["TotalAmt"] == pytest.approx(charge["amount"] / 100)
        assert invoice["CurrencyRef"]["value"] == "USD"
        assert invoice["BillEmail"]["Address"] == charge["receipt_email"]
        mail = next(m for m in box.mail.unique() if charge["id"] in (m.text or ""))
        assert mail.to == [charge["receipt_email"]]
        assert mail.subject == f"Your invoice {invoice['DocNumber']} from Sandbox Shop"
        cents = charge["amount"]
        assert f"USD {cents // 100}.{cents % 100:02d}" in (mail.text or "")
    # two of the three payments are by the same customer: found, not created twice
    emails = {c["receipt_email"] for c in paid.values()}
    customers = [
        c
        for c in box.quickbooks.customers.values()
        if (c.get("PrimaryEmailAddr") or {}).get("Address") in emails
    ]
    assert len(customers) == len(emails) == 2
    # QuickBooks' own email is off by default
    assert box.quickbooks.sent == []
    assert box.slack.messages == []


async def test_second_run_does_nothing_new(flow: Flow) -> None:
    await flow.run(RECIPE)
    box = flow.sandbox
    assert box.quickbooks is not None
    before = (len(box.quickbooks.created_invoices), len(box.mail.messages), len(box.stripe.ledger))
    second = await flow.run(RECIPE)
    assert second.exit_code is ExitCode.OK
    assert (second.new, second.processed) == (0, 0)
    after = (len(box.quickbooks.created_invoices), len(box.mail.messages), len(box.stripe.ledger))
    assert after == before


async def test_a_new_payment_is_picked_up_by_the_next_run_alone(flow: Flow) -> None:
    await flow.run(RECIPE)
    box = flow.sandbox
    newest = max(int(c["created"]) for c in charges(box).values())
    added = box.stripe.add_charge(
        4200,
        receipt_email="new.buyer@example.com",
        created=newest + 60,
        billing_details={"email": "new.buyer@example.com", "name": "New Buyer"},
    )
    summary = await flow.run(RECIPE)
    assert (summary.new, summary.done) == (1, 1)
    assert invoices_by_charge(box)[added["id"]] == 1
    assert [m.to for m in box.mail.unique()][-1] == ["new.buyer@example.com"]
    assert_exactly_once(box)


async def test_a_charge_already_marked_invoiced_is_skipped(flow: Flow) -> None:
    box = flow.sandbox
    newest = max(int(c["created"]) for c in charges(box).values())
    marked = box.stripe.add_charge(
        1500,
        receipt_email="old@example.com",
        created=newest + 1,
        metadata={"qbo_invoice_id": "77", "qbo_invoice_number": "0077"},
    )
    summary = await flow.run(RECIPE)
    assert summary.done == 4
    assert marked["id"] not in invoices_by_charge(box)
    assert marked["id"] not in metadata_writes(box)
    assert all(m.to != ["old@example.com"] for m in box.mail.unique())


async def test_transient_errors_on_writes_are_retried_without_duplicates(flow: Flow) -> None:
    box = flow.sandbox
    box.stripe.fail_next(2, status=503, retry_after=1, match="POST /v1/charges")
    box.mail.reject_rcpt_next(1)
    summary = await flow.run(RECIPE, concurrency=1)
    assert summary.exit_code is ExitCode.OK, summary.errors
    retried = {e.step for e in flow.events if e.kind == "retry"}
    assert {"mark", "email"} <= retried
    assert_exactly_once(box)


async def test_answers_lost_after_applied_writes_are_retried_with_the_same_key(
    flow: Flow,
) -> None:
    """The connection drops after QuickBooks, the mail server and Stripe applied a write: the
    outcome is unknown, the engine repeats the write with the same idempotency key."""
    box = flow.sandbox
    assert box.quickbooks is not None
    box.quickbooks.drop_after_write(2)
    box.mail.drop_after_data_next(1)
    box.stripe.faults.match = "POST /v1/charges/"
    box.stripe.faults.drop_after_apply_next = 1
    summary = await flow.run(RECIPE, concurrency=1)
    assert summary.exit_code is ExitCode.OK, summary.errors
    assert {e.step for e in flow.events if e.kind == "retry"} >= {"customer", "email", "mark"}
    assert_exactly_once(box)
    assert len(box.mail.duplicates()) == 1  # the same message delivered twice, by Message-ID


async def test_a_failed_item_is_reported_to_slack(flow: Flow) -> None:
    box = flow.sandbox
    newest = max(int(c["created"]) for c in charges(box).values())
    nameless = box.stripe.add_charge(990, created=newest + 5)  # no email anywhere
    summary = await flow.run(RECIPE)
    assert summary.exit_code is ExitCode.PARTIAL
    assert (summary.done, summary.failed) == (3, 1)
    assert (await flow.statuses(NAME))[nameless["id"]] is ItemStatus.FAILED
    [message] = box.slack.messages
    text = message.payload["text"]
    assert nameless["id"] in text and "step customer" in text and "next run tries again" in text
    assert nameless["id"] not in invoices_by_charge(box)


async def test_without_slack_webhook_url_a_failure_posts_nothing(flow: Flow) -> None:
    flow.env_overrides["SLACK_WEBHOOK_URL"] = None
    box = flow.sandbox
    newest = max(int(c["created"]) for c in charges(box).values())
    box.stripe.add_charge(990, created=newest + 5)
    summary = await flow.run(RECIPE)
    assert (summary.done, summary.failed) == (3, 1)
    assert box.slack.messages == []
    hooks = [e for e in flow.events if e.kind == "hook"]
    assert hooks == []


async def test_quickbooks_can_email_its_own_invoice_too(flow: Flow) -> None:
    summary = await flow.run(RECIPE, variables={"send_from_quickbooks": True})
    assert summary.done == 3
    box = flow.sandbox
    assert box.quickbooks is not None
    assert len(box.quickbooks.sent) == 3
    assert {s.to for s in box.quickbooks.sent} == {
        c["receipt_email"] for c in charges(box).values()
    }


async def test_since_limits_the_first_run(flow: Flow) -> None:
    box = flow.sandbox
    newest = max(charges(box).values(), key=lambda c: int(c["created"]))
    from flowkit.expressions import compile_template

    since = compile_template("${{ iso(t) }}").render({"t": int(newest["created"])})
    summary = await flow.run(RECIPE, variables={"since": since})
    assert summary.new == 1
    assert list(invoices_by_charge(box)) == [newest["id"]]


# -- the real process -------------------------------------------------------------------------


def test_cli_first_run_then_nothing_new(cli: Cli) -> None:
    first = cli("run", str(RECIPE))
    assert first.returncode == 0, explain(first)
    assert "3 new item(s) of 3 listed; 3 processed: 3 done, 0 failed" in first.stdout
    assert_exactly_once(cli.sandbox)
    again = cli("run", str(RECIPE), "--quiet")
    assert again.returncode == 0, explain(again)
    assert again.stdout == "" and again.stderr == ""
    assert_exactly_once(cli.sandbox)


@pytest.mark.parametrize(
    ("crash_at", "redelivered"),
    [
        ("after_send:2", 0),  # the first invoice was created, its journal entry was not written
        ("before_send:3", 0),  # the first email's intent is journaled, the email was not sent
        ("after_send:7", 1),  # the second payment's email went out, not journaled
    ],
)
def test_cli_crash_and_resume_has_no_duplicate_effect(
    cli: Cli, crash_at: str, redelivered: int
) -> None:
    crashed = cli(
        "run", str(RECIPE), "--concurrency", "1", extra_env={"FLOWKIT_CRASH_AT": crash_at}
    )
    assert crashed.returncode == CRASH_EXIT, explain(crashed)
    resumed = cli("run", str(RECIPE), "--concurrency", "1")
    assert resumed.returncode == 0, explain(resumed)
    assert " ok: " in resumed.stdout and " done, 0 failed" in resumed.stdout
    assert_exactly_once(cli.sandbox)
    # An email sent just before the crash is sent again with the same Message-ID (SMTP has no
    # idempotency key): a second delivery of the same message, never a different email.
    duplicates = cli.sandbox.mail.duplicates()
    assert len(duplicates) == redelivered
    assert all(count == 2 for count in duplicates.values())
