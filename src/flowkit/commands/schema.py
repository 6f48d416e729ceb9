"""`flowkit schema`: the JSON Schema (Draft 2020-12) of recipes, with installed connectors.

The base schema comes from the pydantic models (`recipe_json_schema`). Each installed
connector adds, through `if`/`then` on the `use` value, the schema of every action's inputs to
steps and triggers (`with`), and its settings to connections (by `connector`, or by the
connection's name when `connector` is omitted). Every value in those inputs may also be a
string holding `${{ }}`, since expressions are typed at run time. A connector that fails to
load is left out with a note on stderr.

For VS Code (Red Hat YAML extension) add to settings.json:
  "yaml.schemas": {"./flowkit.schema.json": ["recipes/*.yaml"]}
JSON Schema 2020-12 conditionals: https://json-schema.org/understanding-json-schema/reference/conditionals
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from flowkit.errors import ExitCode

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowkit.connectors.base import Connector
    from flowkit.connectors.registry import Registry

EXPRESSION_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": r"\$\{\{",
    "description": "A ${{ }} expression, evaluated at run time.",
}
_ANNOTATIONS = ("title", "description", "default", "examples", "deprecated")


def run(
    output: Path | None = None,
    *,
    registry: Registry | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Print (or write to `output`) the recipe JSON Schema; returns the exit code."""
    err = stderr or sys.stderr
    schema = build_schema(registry, notes=err)
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        (stdout or sys.stdout).write(text)
        return int(ExitCode.OK)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        err.write(f"flowkit: error: cannot write {output}: {exc.strerror or exc}\n")
        return int(ExitCode.INVALID)
    return int(ExitCode.OK)


def build_schema(
    registry: Registry | None = None, *, notes: TextIO | None = None
) -> dict[str, Any]:
    """The recipe schema enriched with the inputs and settings of the installed connectors."""
    from flowkit.connectors.registry import default_registry
    from flowkit.errors import PluginError
    from flowkit.recipe.models import recipe_json_schema

    reg = registry if registry is not None else default_registry()
    schema = recipe_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    step_rules: list[dict[str, Any]] = []
    connection_rules: list[dict[str, Any]] = []
    by_name: dict[str, Any] = {}
    uses: list[str] = []
    for name in reg.names():
        try:
            connector = reg.get(name)
        except PluginError as exc:
            if notes is not None:
                notes.write(f"flowkit: note: connector '{name}' left out: {exc.message}\n")
            continue
        try:
            rules, named, actions = _connector_rules(defs, name, connector)
        except Exception as exc:  # a plugin model pydantic cannot describe in JSON Schema
            if notes is not None:
                notes.write(f"flowkit: note: connector '{name}' left out: {exc}\n")
            continue
        connection_rules.append(rules[0])
        by_name[name] = named
        step_rules.extend(rules[1:])
        uses.extend(actions)
    for def_name in ("Step", "Trigger"):
        target = defs.get(def_name)
        if target is not None and step_rules:
            target["allOf"] = step_rules
            use_schema = target.get("properties", {}).get("use")
            if isinstance(use_schema, dict):
                use_schema["examples"] = uses
    if "Connection" in defs and connection_rules:
        defs["Connection"]["allOf"] = connection_rules
    connections = schema.get("properties", {}).get("connections")
    if isinstance(connections, dict) and by_name:
        connections["properties"] = by_name
    return schema


def _connector_rules(
    defs: dict[str, Any], name: str, connector: Connector
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """The connection rule and one rule per action for `connector` (its models go to defs).

    Returns ([connection rule, action rules...], the schema of a connection named `name`,
    the `use` values); on failure nothing has been added to `defs`."""
    added: dict[str, Any] = {}
    settings_ref = _add_model(added, f"{name}.settings", connector.settings)
    rules = [_when({"connector": {"const": name}}, ["connector"], {"with": {"$ref": settings_ref}})]
    named = {
        "$ref": "#/$defs/Connection",
        "if": {"not": {"required": ["connector"]}},
        "then": {"properties": {"with": {"$ref": settings_ref}}},
    }
    uses: list[str] = []
    for action_name in sorted(connector.actions):
        use = f"{name}.{action_name}"
        input_ref = _add_model(added, f"{use}.input", connector.actions[action_name].Input)
        rules.append(_when({"use": {"const": use}}, ["use"], {"with": {"$ref": input_ref}}))
        uses.append(use)
    defs.update(added)
    return rules, named, uses


def _when(const: dict[str, Any], required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"properties": const, "required": required},
        "then": {"properties": properties},
    }


def _add_model(defs: dict[str, Any], key: str, model: type[BaseModel]) -> str:
    """Put `model`'s schema (its nested definitions prefixed) into `defs`; its $ref."""
    prefix = key + "."
    schema = model.model_json_schema(ref_template="#/$defs/" + prefix + "{model}")
    for nested_name, nested in schema.pop("$defs", {}).items():
        defs[prefix + nested_name] = allow_expressions(nested, wrap=False)
    defs[key] = allow_expressions(schema, wrap=False)
    return f"#/$defs/{key}"


def allow_expressions(node: Any, *, wrap: bool = True) -> Any:
    """A copy of a schema where every value position also accepts a `${{ }}` string."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    props = out.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: allow_expressions(v) for k, v in props.items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = allow_expressions(out[key])
    if isinstance(out.get("prefixItems"), list):
        out["prefixItems"] = [allow_expressions(v) for v in out["prefixItems"]]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(out.get(key), list):
            out[key] = [allow_expressions(v, wrap=False) for v in out[key]]
    if not wrap:
        return out
    outer = {k: out.pop(k) for k in _ANNOTATIONS if k in out}
    outer["anyOf"] = [out, EXPRESSION_SCHEMA]
    return outer
