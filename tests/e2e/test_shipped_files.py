"""Every recipe in recipes/ and every example in examples/ validates, dry-runs against the
sandbox, and (examples) runs for real against it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowkit.commands import run as run_command
from flowkit.errors import ExitCode
from flowkit.sandbox.runner import Sandbox

from .conftest import EXAMPLES, RECIPES, ROOT, Flow, explain


def shipped(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if not p.name.endswith(".test.yaml"))


SHIPPED = shipped(RECIPES) + shipped(EXAMPLES)


def test_there_is_something_to_check() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "invoice-on-payment",
        "review-request-sequence",
        "review-request-sequence-shopify",
        "inventory-sync",
        "hello",
    } <= names


def test_flowkit_validate_accepts_every_shipped_file() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from flowkit.cli import main; main()",
         "validate", "recipes", "examples"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, explain(result)
    assert result.stdout == "", explain(result)
    assert result.stderr.strip() == f"{len(SHIPPED)} files OK", explain(result)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_dry_run_against_the_sandbox(
    path: Path,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray ./.env is read
    state = tmp_path / "state.db"
    code = run_command.run(path, state=state, dry_run=True)
    out = capsys.readouterr()
    assert code == ExitCode.OK, out.out + out.err
    assert out.out.startswith("DRY RUN: ")
    assert "DRY RUN run " in out.out
    assert not state.exists()
    # nothing was sent anywhere
    assert sandbox.mail.messages == []
    assert sandbox.slack.messages == []
    assert sandbox.stripe.ledger == []
    assert sandbox.quickbooks is not None and sandbox.quickbooks.created_invoices == []
    assert sandbox.woocommerce is not None and sandbox.woocommerce.writes() == []
    assert sandbox.shopify is not None and sandbox.shopify.mutation_calls() == []


async def test_example_hello_runs_once_per_item(flow: Flow) -> None:
    first = await flow.run(EXAMPLES / "hello.yaml")
    assert (first.new, first.done) == (3, 3)
    again = await flow.run(EXAMPLES / "hello.yaml")
    assert (again.new, again.processed) == (0, 0)
    more = await flow.run(EXAMPLES / "hello.yaml", variables={"count": 5})
    assert (more.new, more.done) == (2, 2)


async def test_example_csv_to_slack_posts_each_row_once(flow: Flow) -> None:
    first = await flow.run(EXAMPLES / "csv-to-slack.yaml")
    assert first.exit_code is ExitCode.OK, first.errors
    texts = [m.payload["text"] for m in flow.sandbox.slack.messages]
    assert sorted(texts) == sorted(
        [
            "New customer: Ada Lovelace <ada@example.com> on the pro plan",
            "New customer: Grace Hopper <grace@example.com> on the starter plan",
            "New customer: Alan Turing <alan@example.com> on the pro plan",
        ]
    )
    again = await flow.run(EXAMPLES / "csv-to-slack.yaml")
    assert again.new == 0 and len(flow.sandbox.slack.messages) == 3


async def test_example_http_get_reports_stock_levels(flow: Flow) -> None:
    summary = await flow.run(EXAMPLES / "http-get.yaml")
    assert summary.exit_code is ExitCode.OK, summary.errors
    woo = flow.sandbox.woocommerce
    assert woo is not None
    texts = sorted(m.payload["text"] for m in flow.sandbox.slack.messages)
    assert texts == sorted(
        f"{sku}: {woo.stock(sku)} in stock (Product {sku})"
        for sku in ("SKU-0001", "SKU-0002", "SKU-0003")
    )


async def test_example_orders_to_csv_appends_each_order_once(flow: Flow, tmp_path: Path) -> None:
    out = tmp_path / "orders.csv"
    first = await flow.run(EXAMPLES / "orders-to-csv.yaml", variables={"out_file": str(out)})
    assert first.exit_code is ExitCode.OK, first.errors
    woo = flow.sandbox.woocommerce
    assert woo is not None
    completed = [o for o in woo.orders.values() if o["status"] == "completed"]
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "order,completed_at,customer,email,currency,total,skus"
    assert [line.split(",")[0] for line in lines[1:]] == [str(o["number"]) for o in completed]
    await flow.run(EXAMPLES / "orders-to-csv.yaml", variables={"out_file": str(out)})
    assert out.read_text(encoding="utf-8").splitlines() == lines


RECIPE_TESTS = sorted(RECIPES.glob("*.test.yaml"))


def test_every_shipped_recipe_has_recipe_tests() -> None:
    tested = {p.name.removesuffix(".test.yaml") for p in RECIPE_TESTS}
    assert tested == {p.stem for p in shipped(RECIPES)}


@pytest.mark.parametrize("path", RECIPE_TESTS, ids=[p.name for p in RECIPE_TESTS])
async def test_recipe_tests_pass(path: Path) -> None:
    from flowkit.testing import arun_test_file

    results = await arun_test_file(path)
    assert results
    assert all(r.passed for r in results), "\n".join(r.report() for r in results)


def test_check_env_accepts_an_unset_optional_secret(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowkit.commands import validate

    for name, value in sandbox.env().items():
        if name != "SLACK_WEBHOOK_URL":
            monkeypatch.setenv(name, value)
    code = validate.run([str(RECIPES / "invoice-on-payment.yaml")], fmt="text", check_env=True)
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
