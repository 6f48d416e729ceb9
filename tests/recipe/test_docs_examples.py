"""The examples in docs/recipes.md: every YAML block loads, every complete recipe validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowkit.recipe.loader import check_source
from flowkit.recipe.yamlload import load_yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_reference_has_examples() -> None:
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_yaml_block_loads(index: int) -> None:
    load_yaml(BLOCKS[index], f"docs/recipes.md block {index}", require_mapping=False)


@pytest.mark.parametrize(
    "index", [i for i, block in enumerate(BLOCKS) if block.startswith("flowkit: 1")]
)
def test_complete_recipes_validate(index: int) -> None:
    _, problems = check_source(BLOCKS[index], f"docs/recipes.md block {index}")
    assert [p.format() for p in problems] == []
