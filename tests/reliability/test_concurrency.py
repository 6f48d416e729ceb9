"""Concurrency limits, seen from the server: how many requests of one run were in flight at once.

The crash test depends on these (its kill points assume a known number of items in flight).
The recipe's `concurrency:` was ignored (the option defaulted to 8) until commit 4086895.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import Flowkit, Shop, charge_recipe


def _max_in_flight(
    shop: Shop, flowkit: Flowkit, tmp_path: Path, name: str, recipe_text: str, extra_args: list[str]
) -> int:
    world = shop.worlds[name]
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(recipe_text, encoding="utf-8")
    result = flowkit.run(["run", str(recipe), "--state", str(tmp_path / f"{name}.db"), *extra_args])
    assert result.code == 0, result.stdout + result.stderr
    assert set(world.charges_per_order().values()) == {1}
    return world.max_active


def test_the_concurrency_option_bounds_items_in_flight(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    world = shop.world("cli-concurrency", orders=6)
    world.latency = 0.1
    text = charge_recipe(world, concurrency=6)
    assert _max_in_flight(shop, flowkit, tmp_path, world.name, text, ["--concurrency", "2"]) == 2


def test_the_recipe_concurrency_applies_without_the_option(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    world = shop.world("recipe-concurrency", orders=6)
    world.latency = 0.1
    text = charge_recipe(world, concurrency=1)
    assert _max_in_flight(shop, flowkit, tmp_path, world.name, text, []) == 1
