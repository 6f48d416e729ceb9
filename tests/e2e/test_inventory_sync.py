"""recipes/inventory-sync.yaml end to end: warehouse CSV -> WooCommerce and Shopify stock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowkit.errors import ExitCode
from flowkit.sandbox.runner import Sandbox

from .conftest import CRASH_EXIT, RECIPES, Cli, Flow, explain, recipe

RECIPE = recipe("inventory-sync")
SAMPLE = RECIPES / "data" / "warehouse-stock.csv"


def sample_levels() -> dict[str, int]:
    rows = SAMPLE.read_text(encoding="utf-8").splitlines()[1:]
    return {sku: int(qty) for sku, qty in (row.split(",") for row in rows)}


def woo_batches(sandbox: Sandbox) -> list[list[dict[str, Any]]]:
    assert sandbox.woocommerce is not None
    return [call.body["update"] for call in sandbox.woocommerce.batch_calls() if call.status == 200]


def shopify_batches(sandbox: Sandbox) -> list[list[dict[str, Any]]]:
    assert sandbox.shopify is not None
    return [
        call.variables["input"]["quantities"]
        for call in sandbox.shopify.mutation_calls("SetInventory")
        if call.status == 200
    ]


def levels(sandbox: Sandbox, skus: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    assert sandbox.woocommerce is not None and sandbox.shopify is not None
    woo = {sku: sandbox.woocommerce.stock(sku) for sku in skus}
    shop = {sku: sandbox.shopify.available(sku) for sku in skus}
    return woo, shop


def changed_skus(sandbox: Sandbox) -> dict[str, tuple[int, int]]:
    """SKU -> (channel level now, warehouse level) for the SKUs that differ; the sandbox seeds
    both channels with the same levels."""
    assert sandbox.woocommerce is not None
    out = {}
    for sku, wanted in sample_levels().items():
        now = sandbox.woocommerce.stock(sku)
        assert now is not None
        if now != wanted:
            out[sku] = (now, wanted)
    return out


def write_csv(path: Path, rows: dict[str, int]) -> Path:
    lines = ["sku,quantity", *(f"{sku},{qty}" for sku, qty in rows.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_dry_run_plans_the_changed_skus_and_writes_nothing(flow: Flow) -> None:
    box = flow.sandbox
    expected = changed_skus(box)
    assert expected, "the sample file must differ from the sandbox for this demo"
    summary = await flow.run(RECIPE, dry_run=True)
    assert summary.exit_code is ExitCode.OK, summary.errors
    plans = {e.data["use"]: e.data["changes"] for e in flow.plans()}
    lines = sorted(f"{sku} stock {old} -> {new}" for sku, (old, new) in expected.items())
    assert {use: sorted(changes) for use, changes in plans.items()} == {
        "woocommerce.set_stock": lines,
        "shopify.set_inventory": lines,
    }
    assert box.woocommerce is not None and box.shopify is not None
    assert box.woocommerce.writes() == []
    assert box.shopify.mutation_calls("SetInventory") == []


async def test_first_run_writes_only_changed_skus_in_one_batch_per_channel(flow: Flow) -> None:
    box = flow.sandbox
    expected = changed_skus(box)
    summary = await flow.run(RECIPE)
    assert summary.exit_code is ExitCode.OK, summary.errors
    [woo] = woo_batches(box)
    assert box.woocommerce is not None and box.shopify is not None
    by_id = {p["id"]: p["sku"] for p in box.woocommerce.products.values()}
    assert {by_id[u["id"]]: u["stock_quantity"] for u in woo} == {
        sku: new for sku, (_old, new) in expected.items()
    }
    [shop] = shopify_batches(box)
    assert len(shop) == len(expected)
    assert sorted(q["quantity"] for q in shop) == sorted(new for _old, new in expected.values())
    wanted = sample_levels()
    assert levels(box, list(wanted)) == (wanted, wanted)
    # the outputs say what changed and what did not
    store_steps = [e for e in flow.events if e.kind == "step" and e.step in ("woo", "shopify")]
    assert {e.status for e in store_steps} == {"ok"}


async def test_second_run_writes_nothing(flow: Flow) -> None:
    await flow.run(RECIPE)
    box = flow.sandbox
    assert box.woocommerce is not None and box.shopify is not None
    writes, mutations = len(box.woocommerce.writes()), len(box.shopify.mutation_calls())
    second = await flow.run(RECIPE)
    assert second.exit_code is ExitCode.OK
    assert len(box.woocommerce.writes()) == writes
    assert len(box.shopify.mutation_calls()) == mutations


async def test_many_changes_go_in_the_channels_batch_sizes(flow: Flow, tmp_path: Path) -> None:
    box = flow.sandbox
    assert box.woocommerce is not None and box.shopify is not None
    rows = {}
    for n in range(4, 134):  # 130 more SKUs, all at 0 in both channels
        sku = f"SKU-{n:04d}"
        box.woocommerce.add_product(sku, 0)
        box.shopify.add_variant(sku, 0)
        rows[sku] = n
    rows["SKU-0001"] = box.woocommerce.stock("SKU-0001") or 0  # unchanged
    stock = write_csv(tmp_path / "stock.csv", rows)
    summary = await flow.run(RECIPE, variables={"stock_file": str(stock)})
    assert summary.exit_code is ExitCode.OK, summary.errors
    assert [len(batch) for batch in woo_batches(box)] == [100, 30]  # products/batch: 100 max
    assert [len(batch) for batch in shopify_batches(box)] == [130]  # 250 max per mutation
    assert box.woocommerce.stock("SKU-0133") == 133 == box.shopify.available("SKU-0133")


async def test_a_channel_can_be_switched_off(flow: Flow) -> None:
    summary = await flow.run(RECIPE, variables={"sync_shopify": False})
    assert summary.exit_code is ExitCode.OK
    box = flow.sandbox
    assert len(woo_batches(box)) == 1
    assert shopify_batches(box) == []


async def test_unknown_skus_are_reported_not_fatal(flow: Flow, tmp_path: Path) -> None:
    stock = write_csv(tmp_path / "stock.csv", {"SKU-0002": 9, "SKU-9999": 4})
    summary = await flow.run(RECIPE, variables={"stock_file": str(stock)})
    assert summary.exit_code is ExitCode.OK, summary.errors
    assert flow.sandbox.woocommerce is not None
    assert flow.sandbox.woocommerce.stock("SKU-0002") == 9
    steps = await flow.steps("inventory-sync", f"run-{summary.run_id}")
    for step in ("woo", "shopify"):
        output = steps[step].output
        assert [u["sku"] for u in output["updated"]] == ["SKU-0002"]
        assert [(e["sku"], e["code"].lower()) for e in output["errors"]] == [
            ("SKU-9999", "sku_not_found")
        ]


# -- the real process -------------------------------------------------------------------------


def test_cli_dry_run_prints_the_plan(cli: Cli) -> None:
    expected = changed_skus(cli.sandbox)
    result = cli("run", str(RECIPE), "--dry-run")
    assert result.returncode == 0, explain(result)
    for sku, (old, new) in expected.items():
        assert result.stdout.count(f"~ {sku} stock {old} -> {new}") == 2  # both channels
    assert "2 write(s) shown, none sent" in result.stdout
    box = cli.sandbox
    assert box.woocommerce is not None and box.shopify is not None
    assert box.woocommerce.writes() == [] and box.shopify.mutation_calls("SetInventory") == []
    assert not cli.state.exists()  # a dry run does not even create the state file


def test_cli_crash_after_a_batch_then_resume_writes_each_change_once(cli: Cli) -> None:
    crashed = cli("run", str(RECIPE), extra_env={"FLOWKIT_CRASH_AT": "after_send:2"})
    assert crashed.returncode == CRASH_EXIT, explain(crashed)
    box = cli.sandbox
    assert len(woo_batches(box)) + len(shopify_batches(box)) >= 1  # a write was applied
    resumed = cli("run", str(RECIPE))
    assert resumed.returncode == 0, explain(resumed)
    # the crashed run's item is finished first, then this run's own item: both find nothing
    # more to change than what is left, so each channel was written exactly once
    assert "2 processed: 2 done" in resumed.stdout
    assert len(woo_batches(box)) == 1 and len(shopify_batches(box)) == 1
    wanted = sample_levels()
    assert levels(box, list(wanted)) == (wanted, wanted)
