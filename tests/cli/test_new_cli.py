"""`flowkit new recipe` and `flowkit new connector`: the results validate and pass their tests.

Templates other than `blank` are copies of the shipped recipes (and of their tests when they
exist): `test_templates_are_copies_of_the_shipped_recipes` fails when `recipes/` changes
without the copies under src/flowkit/templates/recipes/ (see docs/scaffolding.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowkit.cli import app
from flowkit.commands import new
from flowkit.testing import run_test_file

ROOT = Path(__file__).resolve().parent.parent.parent
RECIPES = ROOT / "recipes"
TEMPLATES = ROOT / "src" / "flowkit" / "templates" / "recipes"
FLOWKIT = [sys.executable, "-m", "flowkit"]


def flowkit(*args: str, cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWKIT, *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        **kw,  # type: ignore[call-overload]
    )


def shipped() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")] for p in RECIPES.glob("*.yaml") if not p.name.endswith(".test.yaml")
    )


def test_the_templates_are_blank_and_every_shipped_recipe() -> None:
    names = list(new.recipe_templates())
    assert names[0] == "blank"
    assert sorted(names[1:]) == shipped()
    assert {"invoice-on-payment", "review-request-sequence", "inventory-sync"} <= set(names)


@pytest.mark.parametrize("name", shipped())
def test_templates_are_copies_of_the_shipped_recipes(name: str) -> None:
    hint = f"copy recipes/{name}.yaml to src/flowkit/templates/recipes/"
    assert (TEMPLATES / f"{name}.yaml").read_text() == (RECIPES / f"{name}.yaml").read_text(), hint
    shipped_test = RECIPES / f"{name}.test.yaml"
    if shipped_test.exists():
        template_test = (TEMPLATES / f"{name}.test.yaml").read_text()
        assert template_test == shipped_test.read_text(), f"copy {shipped_test.name} too"


@pytest.mark.parametrize("template", list(new.recipe_templates()))
def test_a_new_recipe_from_each_template_validates_and_passes_its_test(
    tmp_path: Path, template: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new.new_recipe("my-flow", template=template, directory=tmp_path) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"Created {tmp_path / 'my-flow.yaml'} and {tmp_path / 'my-flow.test.yaml'} "
        f"from the template '{template}'."
    )
    text = (tmp_path / "my-flow.yaml").read_text()
    assert "\nname: my-flow\n" in text
    assert (tmp_path / "my-flow.test.yaml").read_text().count("recipe: my-flow.yaml") == 1
    results = run_test_file(tmp_path / "my-flow.test.yaml")
    assert results and all(r.passed for r in results), "\n".join(r.report() for r in results)


def test_new_recipes_validate_with_the_real_flowkit_validate(tmp_path: Path) -> None:
    for template in new.recipe_templates():
        assert new.new_recipe(template, template=template, directory=tmp_path) == 0
    result = flowkit("validate", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_a_tty_and_without_from_the_blank_template_is_used(tmp_path: Path) -> None:
    result = flowkit(
        "new", "recipe", "sync-stock", "--dir", "r", cwd=tmp_path, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    assert "from the template 'blank'" in result.stdout
    assert "name: sync-stock" in (tmp_path / "r" / "sync-stock.yaml").read_text()


def test_on_a_tty_the_template_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(new, "_interactive", lambda: True)
    runner = CliRunner()
    result = runner.invoke(app, ["new", "recipe", "pay", "--dir", str(tmp_path)], input="nope\n2\n")
    assert result.exit_code == 0, result.output
    second = list(new.recipe_templates())[1]
    assert "  1. blank" in result.output
    assert "Choose one of: blank," in result.output
    assert f"from the template '{second}'" in result.output
    # with --from nothing is asked, even on a terminal
    again = runner.invoke(
        app, ["new", "recipe", "pay2", "--from", "blank", "--dir", str(tmp_path)], input=""
    )
    assert again.exit_code == 0 and "Templates:" not in again.output


def test_existing_files_are_not_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine.yaml").write_text("keep me\n")
    assert new.new_recipe("mine", directory=tmp_path) == 1
    assert capsys.readouterr().err == (
        f"flowkit: error: {tmp_path / 'mine.yaml'} already exists; use --force to overwrite it\n"
    )
    assert (tmp_path / "mine.yaml").read_text() == "keep me\n"
    assert not (tmp_path / "mine.test.yaml").exists()
    assert new.new_recipe("mine", directory=tmp_path, force=True) == 0
    assert "name: mine" in (tmp_path / "mine.yaml").read_text()


def test_bad_names_and_templates_exit_2_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new.new_recipe("My Flow", directory=tmp_path) == 2
    assert capsys.readouterr().err == (
        "flowkit: error: 'My Flow' is not a valid recipe name\n"
        "  hint: use lowercase letters, digits, `-`, `_` and `.`, e.g. invoice-on-payment\n"
    )
    assert new.new_recipe("ok", template="invoice-on-paymnt", directory=tmp_path) == 2
    assert capsys.readouterr().err == (
        "flowkit: error: unknown template 'invoice-on-paymnt'\n"
        "  hint: did you mean 'invoice-on-payment'?\n"
    )
    assert list(tmp_path.iterdir()) == []


# -- connectors --------------------------------------------------------------------------------


def test_a_new_connector_package_passes_its_own_tests(tmp_path: Path) -> None:
    assert new.new_connector("acme_shop", directory=tmp_path) == 0
    root = tmp_path / "flowkit-acme_shop"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "pyproject.toml",
        "src/flowkit_acme_shop/__init__.py",
        "tests/test_acme_shop.py",
    ]
    pyproject = (root / "pyproject.toml").read_text()
    assert (
        '[project.entry-points."flowkit.connectors"]\nacme_shop = "flowkit_acme_shop:connector"'
        in pyproject
    )
    assert 'dependencies = ["flowkit>=' in pyproject
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", str(root / "tests"), "-p", "no:cacheprovider", "-q"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "5 passed" in tests.stdout
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from flowkit_acme_shop import connector; from flowkit.testing import check_connector;"
            "print(check_connector(connector), sorted(connector.actions),"
            " [a.effect.value for a in connector.actions.values()])",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "[] ['create_record', 'list_records'] ['read', 'write']", (
        check.stderr
    )


def test_the_new_connector_module_follows_the_sdk(tmp_path: Path) -> None:
    files = new.render_connector("mystore")
    module = files["src/flowkit_mystore/__init__.py"]
    assert "idempotency = Idempotency.HEADER" in module
    assert "from flowkit.connectors.http_client import HttpClient" in module
    assert "api_key: SecretStr" in module
    readme = files["README.md"]
    assert "use: mystore.list_records" in readme and "python -m pytest" in readme


def test_new_connector_refuses_bad_names_builtins_and_existing_dirs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new.new_connector("My-Store", directory=tmp_path) == 2
    assert "is not a valid connector name" in capsys.readouterr().err
    assert new.new_connector("stripe", directory=tmp_path) == 2
    assert capsys.readouterr().err.startswith(
        "flowkit: error: a connector named 'stripe' is already installed (from flowkit "
    )
    (tmp_path / "flowkit-mine").mkdir()
    (tmp_path / "flowkit-mine" / "notes.txt").write_text("x")
    assert new.new_connector("mine", directory=tmp_path) == 1
    assert capsys.readouterr().err == (
        f"flowkit: error: {tmp_path / 'flowkit-mine'} already exists and is not empty; "
        "use --force to overwrite its files\n"
    )
    assert new.new_connector("mine", directory=tmp_path, force=True) == 0
    assert (tmp_path / "flowkit-mine" / "notes.txt").read_text() == "x"
    assert (tmp_path / "flowkit-mine" / "pyproject.toml").exists()


def test_inventory_template_brings_its_sample_data(tmp_path: Path) -> None:
    from flowkit.commands.new import new_recipe

    assert new_recipe("stock", template="inventory-sync", directory=tmp_path, force=False) == 0
    sample = tmp_path / "data" / "warehouse-stock.csv"
    shipped = Path(__file__).resolve().parents[2] / "recipes" / "data" / "warehouse-stock.csv"
    assert sample.read_bytes() == shipped.read_bytes()
