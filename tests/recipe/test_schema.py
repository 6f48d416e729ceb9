"""`flowkit schema`: a valid Draft 2020-12 schema that accepts every shipped recipe and example
and checks connector inputs and settings the way `validate` does."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowkit.commands import schema as schema_cmd
from flowkit.connectors.registry import Registry
from flowkit.recipe.loader import check_source
from flowkit.recipe.yamlload import load_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    p
    for folder in ("recipes", "examples")
    for p in (ROOT / folder).rglob("*.y*ml")
    if p.suffix in (".yaml", ".yml") and not p.name.endswith((".test.yaml", ".test.yml"))
)

FIXTURES = {
    "demo-full": """\
flowkit: 1
name: demo-full
description: Every section of the format.
vars: {limit: 5, label: x}
secrets:
  DEMO_KEY: the key
  OTHER: {description: optional, required: false}
  PLAIN:
connections:
  demo:
    with:
      api_key: ${{ secrets.DEMO_KEY }}
      timeout: ${{ vars.limit }}
    concurrency: 2
  backup:
    connector: demo
    with: {api_key: literal, base_url: "https://b.invalid"}
trigger:
  use: demo.list_orders
  with: {status: paid, cursor: "${{ cursor }}", limit: 50}
  items: ${{ output.items }}
  key: ${{ item.id }}
  cursor: ${{ output.next }}
  retry: {attempts: 3}
  timeout: 30s
steps:
  - id: invoice
    use: demo.create_invoice
    connection: backup
    with:
      customer: ${{ item.email }}
      amount: ${{ item.total }}
      lines: [{sku: a, qty: "${{ 1 + 1 }}"}]
    retry: {attempts: 5, backoff: 2s, max_delay: 1m, deadline: 1h, jitter: false,
            retry_on: [transient, timeout], unsafe_writes: false}
    timeout: 10s
    on_error: continue
  - id: pause
    wait: {for: 3d}
    needs: [invoice]
  - id: until
    wait: {until: "${{ steps.invoice.output.number }}"}
  - id: each
    use: demo.send
    for_each: ${{ item.lines }}
    if: ${{ steps.invoice.output.number > 0 }}
    with: {to: "${{ item.email }}", subject: "${{ each.sku }} #${{ index }}"}
on_failure:
  - id: alert
    use: demo.send
    with: {to: ops@example.com, subject: "${{ error.step }}: ${{ error.message }}"}
max_item_failures: 5
concurrency: 4
""",
    "noop-minimal": """\
flowkit: 1
name: noop-minimal
steps:
  - id: a
    use: noop.write
    with: {data: {n: 1}}
  - id: b
    use: noop.notify
    with: {message: "${{ steps.a.output.id }}"}
""",
}


@pytest.fixture(scope="module")
def schema(module_registry: Registry) -> dict[str, Any]:
    return schema_cmd.build_schema(module_registry)


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_the_schema_is_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "demo.create_invoice.input" in schema["$defs"]
    assert "demo.settings" in schema["$defs"]
    assert "noop.write" in schema["$defs"]["Step"]["properties"]["use"]["examples"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_match_the_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    data = load_yaml(path.read_bytes(), str(path)).data
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize("name", list(FIXTURES))
def test_fixtures_match_the_schema_and_validate(
    name: str, validator: jsonschema.Draft202012Validator, registry: Registry
) -> None:
    text = FIXTURES[name]
    data = load_yaml(text).data
    assert [e.message for e in validator.iter_errors(data)] == []
    _, problems = check_source(text, f"{name}.yaml", registry=registry)
    assert problems == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["steps"][0]["with"].update(bogus=1), "$.steps[0].with"),
        (lambda d: d["steps"][0]["with"].update(amount="lots"), "$.steps[0].with.amount"),
        (
            lambda d: d["steps"][0]["with"]["lines"][0].update(qty="x"),
            "$.steps[0].with.lines[0]",
        ),
        (lambda d: d["steps"][0].update(retry={"attempts": 0}), "$.steps[0].retry.attempts"),
        (lambda d: d["trigger"]["with"].update(status="shipped"), "$.trigger.with.status"),
        (lambda d: d["connections"]["demo"]["with"].update(port=1), "$.connections.demo.with"),
        (lambda d: d["connections"]["backup"]["with"].pop("api_key"), "$.connections.backup.with"),
        (lambda d: d.update(flowkit=2), "$.flowkit"),
        (lambda d: d["steps"][1].update(usee="x"), "$.steps[1]"),
    ],
)
def test_the_schema_catches_mistakes(
    change: Any, where: str, validator: jsonschema.Draft202012Validator
) -> None:
    data = load_yaml(FIXTURES["demo-full"]).data
    change(data)
    paths = {e.json_path for e in validator.iter_errors(data)}
    paths |= {sub.json_path for e in validator.iter_errors(data) for sub in (e.context or [])}
    assert where in paths


def test_a_broken_connector_is_left_out_with_a_note() -> None:
    class WithGhost(Registry):
        def names(self) -> list[str]:
            return [*super().names(), "ghost"]

    notes = io.StringIO()
    schema = schema_cmd.build_schema(WithGhost(), notes=notes)
    assert (
        notes.getvalue() == "flowkit: note: connector 'ghost' left out: unknown connector 'ghost'\n"
    )
    assert not any(key.startswith("ghost.") for key in schema["$defs"])
    jsonschema.Draft202012Validator.check_schema(schema)


def test_run_prints_or_writes(tmp_path: Path, module_registry: Registry) -> None:
    out = io.StringIO()
    assert schema_cmd.run(registry=module_registry, stdout=out, stderr=io.StringIO()) == 0
    printed = json.loads(out.getvalue())
    target = tmp_path / "flowkit.schema.json"
    assert schema_cmd.run(target, registry=module_registry, stderr=io.StringIO()) == 0
    assert json.loads(target.read_text()) == printed
    err = io.StringIO()
    bad = tmp_path / "missing" / "x.json"
    assert schema_cmd.run(bad, registry=module_registry, stderr=err) == 2
    assert err.getvalue().startswith("flowkit: error: cannot write ")


def test_allow_expressions_wraps_value_positions() -> None:
    wrapped = schema_cmd.allow_expressions(
        {
            "type": "object",
            "properties": {"n": {"type": "integer", "description": "count"}},
        },
        wrap=False,
    )
    n = wrapped["properties"]["n"]
    assert n["description"] == "count"
    assert n["anyOf"] == [{"type": "integer"}, schema_cmd.EXPRESSION_SCHEMA]


def test_a_connector_without_a_json_schema_is_left_out() -> None:
    from pydantic import ConfigDict

    from flowkit.connectors.base import Action, Connector, Input
    from flowkit.connectors.base import Output as AnyOutput

    class Opaque:
        pass

    class OddInput(Input):
        model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)
        thing: Opaque | None = None

    class Odd(Action[OddInput, AnyOutput]):
        name = "odd"
        Input = OddInput
        Output = AnyOutput

    notes = io.StringIO()
    registry = Registry(extra={"odd": Connector("odd", actions=[Odd()])})
    schema = schema_cmd.build_schema(registry, notes=notes)
    assert notes.getvalue().startswith("flowkit: note: connector 'odd' left out: ")
    assert not any(key.startswith("odd.") for key in schema["$defs"])
    assert "noop.write.input" in schema["$defs"]
