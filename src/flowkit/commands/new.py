"""`flowkit new recipe` and `flowkit new connector`: scaffolding from packaged templates.

Templates live in `flowkit/templates/` (package data, shipped in the wheel):
  recipes/<template>.yaml        a recipe; `name:` is replaced by the new name
  recipes/<template>.test.yaml   its starter test (`flowkit test`); `recipe:` points at the copy
  connector/...*.tmpl            a connector plugin package; `@name@`, `@NAME@` and
                                 `@flowkit_version@` are replaced
The recipe templates other than `blank` are copies of the shipped recipes in `recipes/`
(a test keeps them equal; see docs/scaffolding.md).

References followed: hatchling ships every file under `packages` that .gitignore does not
exclude (https://hatch.pypa.io/latest/config/build/), read back here with
`importlib.resources.files` (https://docs.python.org/3/library/importlib.resources.html).
"""

from __future__ import annotations

import difflib
import re
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from flowkit.errors import ExitCode

RECIPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
CONNECTOR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_TEMPLATE = "blank"

# connector skeleton: template file -> path in the new package
_CONNECTOR_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "src/__init__.py.tmpl": "src/flowkit_{name}/__init__.py",
    "tests/test_connector.py.tmpl": "tests/test_{name}.py",
}


def _templates() -> Traversable:
    return files("flowkit") / "templates"


def recipe_templates() -> dict[str, str]:
    """Template name -> its one-line description, blank first."""
    out: dict[str, str] = {}
    folder = _templates() / "recipes"
    names = sorted(
        entry.name[: -len(".yaml")]
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml") and not entry.name.endswith(".test.yaml")
    )
    for name in sorted(names, key=lambda n: (n != DEFAULT_TEMPLATE, n)):
        text = (folder / f"{name}.yaml").read_text(encoding="utf-8")
        match = re.search(r"^description:\s*(.*)$", text, re.MULTILINE)
        out[name] = match.group(1).strip() if match else ""
    return out


def recipe_template(name: str) -> tuple[str, str]:
    """(recipe text, test text) of a template."""
    folder = _templates() / "recipes"
    return (
        (folder / f"{name}.yaml").read_text(encoding="utf-8"),
        (folder / f"{name}.test.yaml").read_text(encoding="utf-8"),
    )


def _error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(f"flowkit: error: {message}\n")
    if hint:
        sys.stderr.write(f"  hint: {hint}\n")


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _ask_template(choices: dict[str, str]) -> str:
    """Ask on the terminal; accepts a template's name or its number."""
    import typer

    names = list(choices)
    typer.echo("Templates:")
    width = max(len(n) for n in names)
    for number, name in enumerate(names, start=1):
        typer.echo(f"  {number}. {name.ljust(width)}  {choices[name]}")
    while True:
        answer = str(typer.prompt("Template", default=DEFAULT_TEMPLATE)).strip()
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            return names[int(answer) - 1]
        if answer in choices:
            return answer
        typer.echo(f"Choose one of: {', '.join(names)} (or its number).")


def render_recipe(template: str, name: str) -> tuple[str, str]:
    """The new recipe's text and its test's text, for `name`."""
    recipe, test = recipe_template(template)
    recipe, count = re.subn(r"^name:[ \t]*\S.*$", f"name: {name}", recipe, count=1, flags=re.M)
    if count != 1:
        raise ValueError(f"template {template!r} has no top-level `name:` line")
    test, count = re.subn(r"^recipe:[ \t]*\S.*$", f"recipe: {name}.yaml", test, count=1, flags=re.M)
    if count != 1:
        raise ValueError(f"template test {template!r} has no top-level `recipe:` line")
    test = test.replace(f"{template}.yaml", f"{name}.yaml")
    return recipe, test


def new_recipe(
    name: str, *, template: str | None = None, directory: Path = Path("."), force: bool = False
) -> int:
    """Write NAME.yaml and NAME.test.yaml in `directory` from a template."""
    if name.endswith((".yaml", ".yml")):
        name = name.rsplit(".", 1)[0]
    if not RECIPE_NAME.match(name) or len(name) > 100:
        _error(
            f"'{name}' is not a valid recipe name",
            "use lowercase letters, digits, `-`, `_` and `.`, e.g. invoice-on-payment",
        )
        return ExitCode.INVALID
    choices = recipe_templates()
    if template is None:
        template = _ask_template(choices) if _interactive() else DEFAULT_TEMPLATE
    if template not in choices:
        near = difflib.get_close_matches(template, list(choices), n=1)
        _error(
            f"unknown template '{template}'",
            f"did you mean '{near[0]}'?" if near else "templates: " + ", ".join(choices),
        )
        return ExitCode.INVALID
    recipe_path = directory / f"{name}.yaml"
    test_path = directory / f"{name}.test.yaml"
    existing = [p for p in (recipe_path, test_path) if p.exists()]
    if existing and not force:
        _error(f"{existing[0]} already exists; use --force to overwrite it")
        return ExitCode.FAILED
    recipe_text, test_text = render_recipe(template, name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        recipe_path.write_text(recipe_text, encoding="utf-8")
        test_path.write_text(test_text, encoding="utf-8")
        samples = _copy_sample_data(recipe_text, directory)
    except OSError as exc:
        _error(f"cannot write to {directory}: {exc.strerror or exc}")
        return ExitCode.FAILED
    print(f"Created {recipe_path} and {test_path} from the template '{template}'.")
    for sample in samples:
        print(f"Also created {sample}, sample data the recipe reads by default.")
    secrets = _secret_names(recipe_text)
    if secrets:
        print(f"It reads these secrets from the environment or .env: {', '.join(secrets)}.")
    print(f"Next: edit it, then `flowkit validate {recipe_path}` and `flowkit test {test_path}`.")
    return ExitCode.OK


def _copy_sample_data(recipe_text: str, directory: Path) -> list[Path]:
    """Copy the template's sample data files the recipe names (e.g. data/warehouse-stock.csv)
    next to it, unless a file of that name is already there."""
    folder = _templates() / "recipes" / "data"
    copied: list[Path] = []
    if not folder.is_dir():
        return copied
    for sample in sorted(folder.iterdir(), key=lambda entry: entry.name):
        target = directory / "data" / sample.name
        if f"data/{sample.name}" in recipe_text and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sample.read_bytes())
            copied.append(target)
    return copied


def _secret_names(text: str) -> list[str]:
    from flowkit.recipe.yamlload import load_yaml

    data = load_yaml(text).data
    secrets = data.get("secrets") if isinstance(data, dict) else None
    return list(secrets) if isinstance(secrets, dict) else []


def render_connector(name: str) -> dict[str, str]:
    """Relative path -> text of every file of a new connector package."""
    from flowkit import __version__

    folder = _templates() / "connector"
    out: dict[str, str] = {}
    for source, target in _CONNECTOR_FILES.items():
        node = folder
        for part in source.split("/"):
            node = node / part
        text = node.read_text(encoding="utf-8")
        text = text.replace("@name@", name).replace("@NAME@", name.upper())
        out[target.format(name=name)] = text.replace("@flowkit_version@", __version__)
    return out


def new_connector(name: str, *, directory: Path = Path("."), force: bool = False) -> int:
    """Create `flowkit-NAME/`: a connector plugin package with a passing test."""
    if not CONNECTOR_NAME.match(name) or len(name) > 50:
        _error(
            f"'{name}' is not a valid connector name",
            "use lowercase letters, digits and `_`, starting with a letter, e.g. mystore",
        )
        return ExitCode.INVALID
    from flowkit.connectors.registry import Registry

    info = Registry().info(name)
    if info is not None:
        _error(
            f"a connector named '{name}' is already installed (from {info.distribution})",
            "choose another name: two plugins cannot register the same connector",
        )
        return ExitCode.INVALID
    root = directory / f"flowkit-{name}"
    if root.exists() and any(root.iterdir()) and not force:
        _error(f"{root} already exists and is not empty; use --force to overwrite its files")
        return ExitCode.FAILED
    try:
        for relative, text in render_connector(name).items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        _error(f"cannot write to {root}: {exc.strerror or exc}")
        return ExitCode.FAILED
    print(f"Created the connector package {root}/ (connector '{name}').")
    print(f"Next: `cd {root}`, `python -m pip install -e '.[test]'`, `python -m pytest`;")
    print(f"then `flowkit connectors show {name}` lists it. See {root}/README.md.")
    return ExitCode.OK
