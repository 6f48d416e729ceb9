"""recipes/review-request-sequence*.yaml end to end: asks, durable waits across runs, stops.

The waits are walked through with the engine's fake clock (in-process: `FakeClock.advance`;
the real process: `FLOWKIT_CLOCK=fake:<t>` moving forward between runs).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flowkit.errors import ExitCode
from flowkit.sandbox.runner import Sandbox
from flowkit.state.base import ItemStatus

from .conftest import CRASH_EXIT, DAY, Cli, Flow, explain, recipe

WOO = recipe("review-request-sequence")
SHOPIFY = recipe("review-request-sequence-shopify")
ASK_SUBJECTS = ("How do you like your order", "A quick review of order", "Last call: your review")
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def asks(sandbox: Sandbox, email: str) -> list[str]:
    """The subjects of the unique review requests sent to `email`, in order."""
    return [m.subject for m in sandbox.mail.to(email)]


def ask_kinds(subjects: list[str]) -> list[int]:
    return [next(i for i, s in enumerate(ASK_SUBJECTS, 1) if s in subject) for subject in subjects]


def completed_woo_order(sandbox: Sandbox, email: str, first_name: str) -> int:
    woo = sandbox.woocommerce
    assert woo is not None
    order = woo.add_order(
        email=email,
        first_name=first_name,
        items=[(101, 1), (103, 2)],
        created=datetime(2025, 1, 2, 9, 0, tzinfo=UTC),
    )
    woo.set_order_status(order["id"], "completed", datetime(2025, 1, 2, 10, 0, tzinfo=UTC))
    return int(order["id"])


async def test_woocommerce_three_asks_then_stop_and_a_review_stops_the_sequence(
    flow: Flow,
) -> None:
    box = flow.sandbox
    woo = box.woocommerce
    assert woo is not None
    seeded = next(o for o in woo.orders.values() if o["status"] == "completed")
    silent = completed_woo_order(box, "silent.sam@example.com", "Sam")
    reviewer = completed_woo_order(box, "rita.reviewer@example.com", "Rita")
    name = "review-request-sequence"

    # run 1: every completed order gets the first ask, then waits 3 days
    first = await flow.run(WOO)
    assert first.exit_code is ExitCode.OK, first.errors
    assert (first.new, first.waiting) == (3, 3)
    assert ask_kinds(asks(box, "silent.sam@example.com")) == [1]
    assert ask_kinds(asks(box, "rita.reviewer@example.com")) == [1]
    assert ask_kinds(asks(box, seeded["billing"]["email"])) == [1]
    [mail] = asks(box, "silent.sam@example.com")
    assert mail == f"How do you like your order #{silent}?"
    text = box.mail.to("silent.sam@example.com")[0].text or ""
    assert text.startswith("Hello Sam,") and "Product SKU-0001" in text
    items = await flow.items(name)
    assert {k: r.status for k, r in items.items()} == dict.fromkeys(
        [str(seeded["id"]), str(silent), str(reviewer)], ItemStatus.WAITING
    )
    assert all(r.wake_at == flow.clock.now() + 3 * DAY for r in items.values())

    # the customer writes a review in the store
    woo.add_review(101, "rita.reviewer@example.com", rating=5)

    # one day later: nothing is due, nothing is sent
    flow.clock.advance(DAY)
    idle = await flow.run(WOO)
    assert (idle.new, idle.processed) == (0, 0)
    assert len(box.mail.messages) == 3

    # three days after the first ask: the second ask, except for the reviewer, whose chain ends
    flow.clock.advance(2 * DAY + 1)
    second = await flow.run(WOO)
    assert (second.processed, second.waiting, second.done) == (3, 2, 1)
    assert ask_kinds(asks(box, "silent.sam@example.com")) == [1, 2]
    assert ask_kinds(asks(box, "rita.reviewer@example.com")) == [1]
    statuses = await flow.statuses(name)
    assert statuses[str(reviewer)] is ItemStatus.DONE

    # three more days: the third and last ask
    flow.clock.advance(3 * DAY + 1)
    third = await flow.run(WOO)
    assert (third.processed, third.done, third.waiting) == (2, 2, 0)
    assert ask_kinds(asks(box, "silent.sam@example.com")) == [1, 2, 3]
    assert ask_kinds(asks(box, seeded["billing"]["email"])) == [1, 2, 3]

    # weeks later: the sequence is over, nobody is asked a fourth time
    flow.clock.advance(30 * DAY)
    later = await flow.run(WOO)
    assert (later.new, later.processed) == (0, 0)
    assert len(box.mail.unique()) == 3 + 1 + 3 == len(box.mail.messages)
    assert set((await flow.statuses(name)).values()) == {ItemStatus.DONE}


async def test_woocommerce_a_review_before_the_first_ask_means_no_email(flow: Flow) -> None:
    box = flow.sandbox
    assert box.woocommerce is not None
    completed_woo_order(box, "early.bird@example.com", "Ed")
    box.woocommerce.add_review(103, "early.bird@example.com")
    summary = await flow.run(WOO)
    assert summary.exit_code is ExitCode.OK
    assert asks(box, "early.bird@example.com") == []
    steps = [(e.item, e.step, e.status) for e in flow.events if e.kind == "step"]
    order_key = next(k for k, _s, _t in steps if k and k != "1001")
    skipped = {s for k, s, t in steps if k == order_key and t == "skipped"}
    assert skipped == {"ask_1", "wait_1", "check_2", "ask_2", "wait_2", "check_3", "ask_3"}


async def test_woocommerce_days_between_asks_is_a_variable(flow: Flow) -> None:
    first = await flow.run(WOO, variables={"days_between_asks": 1})
    assert first.waiting == 1
    flow.clock.advance(DAY + 1)
    second = await flow.run(WOO, variables={"days_between_asks": 1})
    assert (second.processed, second.waiting) == (1, 1)
    assert len(flow.sandbox.mail.unique()) == 2


async def test_shopify_variant_stops_on_the_reviewed_tag(flow: Flow) -> None:
    box = flow.sandbox
    shop = box.shopify
    assert shop is not None
    seeded = next(o for o in shop.orders.values() if o["displayFulfillmentStatus"] == "FULFILLED")
    extra = shop.add_order(
        email="rita.reviewer@example.com",
        first_name="Rita",
        items=[("SKU-0003", 1)],
        created=datetime(2025, 1, 2, 9, 0, tzinfo=UTC),
    )
    shop.fulfill_order(extra["id"], datetime(2025, 1, 2, 12, 0, tzinfo=UTC))

    first = await flow.run(SHOPIFY)
    assert first.exit_code is ExitCode.OK, first.errors
    assert (first.new, first.waiting) == (2, 2)
    assert ask_kinds(asks(box, seeded["email"])) == [1]
    assert ask_kinds(asks(box, "rita.reviewer@example.com")) == [1]
    assert shop.orders[extra["id"]]["tags"] == ["review-requested-1"]

    shop.orders[extra["id"]]["tags"].append("reviewed")  # a review app tags the order
    flow.clock.advance(3 * DAY + 1)
    second = await flow.run(SHOPIFY)
    assert (second.processed, second.done, second.waiting) == (2, 1, 1)
    assert ask_kinds(asks(box, "rita.reviewer@example.com")) == [1]
    flow.clock.advance(3 * DAY + 1)
    third = await flow.run(SHOPIFY)
    assert third.done == 1
    assert ask_kinds(asks(box, seeded["email"])) == [1, 2, 3]
    assert shop.orders[seeded["id"]]["tags"] == [
        "review-requested-1",
        "review-requested-2",
        "review-requested-3",
    ]
    assert len(shop.mutation_calls("AddTags")) == 4
    flow.clock.advance(30 * DAY)
    assert (await flow.run(SHOPIFY)).processed == 0
    assert len(box.mail.messages) == 4


# -- the real process -------------------------------------------------------------------------


def test_cli_waits_across_runs_with_a_fake_clock_until_three_asks(cli: Cli) -> None:
    email = next(
        o["billing"]["email"]
        for o in (cli.sandbox.woocommerce.orders.values() if cli.sandbox.woocommerce else [])
        if o["status"] == "completed"
    )
    at = START
    kinds: list[list[int]] = []
    outputs: list[str] = []
    for offset in (0.0, 3 * DAY + 60, 3 * DAY + 60):
        at += offset
        result = cli("run", str(WOO), extra_env={"FLOWKIT_CLOCK": f"fake:{at:.0f}"})
        assert result.returncode == 0, explain(result)
        kinds.append(ask_kinds(asks(cli.sandbox, email)))
        outputs.append(result.stdout)
    assert kinds == [[1], [1, 2], [1, 2, 3]]
    assert "item waiting until 2026-01-04T00:00:00Z" in outputs[0]
    assert "item waiting until 2026-01-07T00:01:00Z" in outputs[1]
    assert "1 processed: 1 done, 0 failed, 0 waiting" in outputs[2]  # the sequence is over


def test_cli_crash_after_the_email_went_out_sends_it_once(cli: Cli) -> None:
    crashed = cli("run", str(WOO), extra_env={"FLOWKIT_CRASH_AT": "after_send:2"})
    assert crashed.returncode == CRASH_EXIT, explain(crashed)
    assert len(cli.sandbox.mail.messages) == 1  # sent, but not journaled
    resumed = cli("run", str(WOO))
    assert resumed.returncode == 0, explain(resumed)
    assert "1 waiting" in resumed.stdout
    box = cli.sandbox
    assert len(box.mail.unique()) == 1
    assert list(box.mail.duplicates().values()) == [2]  # the same Message-ID, delivered again
