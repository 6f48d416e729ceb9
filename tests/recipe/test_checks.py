"""Semantic checks: expression scopes, connectors, inputs, connections, secrets, shapes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from flowkit.connectors.registry import Registry
from flowkit.errors import Problem, RecipeInvalid
from flowkit.recipe.loader import check_source, load_recipe, render_path

HEADER = """\
flowkit: 1
name: demo
connections:
  demo:
    with:
      api_key: ${{ secrets.DEMO_KEY }}
"""

TRIGGER = """\
trigger:
  use: demo.list_orders
  with:
    cursor: ${{ cursor }}
  key: ${{ item.id }}
  cursor: ${{ output.next }}
"""


def first_lines(problems: list[Problem]) -> list[str]:
    return [p.format().splitlines()[0] for p in problems]


def check(registry: Registry, body: str, *, header: str = HEADER, **kwargs: object) -> list[str]:
    _, problems = check_source((header + body).encode(), "r.yaml", registry=registry, **kwargs)  # type: ignore[arg-type]
    return first_lines(problems)


def hints(registry: Registry, body: str, **kwargs: object) -> list[str | None]:
    _, problems = check_source((HEADER + body).encode(), "r.yaml", registry=registry, **kwargs)  # type: ignore[arg-type]
    return [p.hint for p in problems]


def test_a_valid_recipe_loads_with_its_graph(tmp_path: Path, registry: Registry) -> None:
    text = (
        HEADER
        + TRIGGER
        + """\
steps:
  - id: invoice
    use: demo.create_invoice
    with:
      customer: ${{ item.email }}
      amount: ${{ item.total }}
      lines: ${{ item.lines }}
  - id: notify
    use: demo.send
    if: ${{ steps.invoice.output.number > 0 }}
    with:
      to: ${{ item.email }}
      subject: "Invoice ${{ steps.invoice.output.number }}"
  - id: later
    wait: {for: 3d}
    needs: [notify]
  - id: remind
    use: demo.send
    for_each: ${{ item.lines }}
    with: {to: "${{ item.email }}", subject: "${{ each.sku }} ${{ index }}"}
on_failure:
  - id: alert
    use: demo.send
    with: {to: ops@example.com, subject: "${{ error.message }} ${{ steps.invoice.output.id }}"}
"""
    )
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = load_recipe(path, registry=registry)
    assert loaded.recipe.name == "demo"
    assert loaded.path == path
    assert loaded.source_hash == hashlib.sha256(text.encode()).hexdigest()
    assert loaded.graph.order == ["invoice", "notify", "later", "remind"]
    assert loaded.graph.deps["notify"] == frozenset({"invoice"})
    assert loaded.graph.deps["remind"] == frozenset()
    assert loaded.failure_graph.order == ["alert"]


def test_load_recipe_raises_with_all_problems(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        HEADER + "steps:\n  - id: a\n    use: demo.nope\n  - {id: a, wait: {for: 1s}}\n"
    )
    with pytest.raises(RecipeInvalid) as info:
        load_recipe(path, registry=registry)
    assert [p.line for p in info.value.problems] == [9, 10]
    assert str(info.value).endswith("(and 1 more)")


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(RecipeInvalid) as info:
        load_recipe(tmp_path / "nope.yaml")
    assert [p.format() for p in info.value.problems] == [
        f"{tmp_path}/nope.yaml:1:1: file not found"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "steps:\n  - id: a\n    use: demo.send\n    with: {to: '${{ cursor }}', subject: s}\n",
            "r.yaml:10:21: steps[0].with.to: `cursor` is not available here",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n"
            "    with: {to: '${{ output.x }}', subject: s}\n",
            "r.yaml:10:21: steps[0].with.to: `output` is not available here",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n    with: {to: '${{ each }}', subject: s}\n",
            "r.yaml:10:21: steps[0].with.to: `each` is not available here",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n    for_each: [1]\n    if: ${{ index > 0 }}\n"
            "    with: {to: a, subject: s}\n",
            "r.yaml:11:13: steps[0].if: `index` is not available here",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n"
            "    with: {to: '${{ error.message }}', subject: s}\n",
            "r.yaml:10:21: steps[0].with.to: `error` is not available here",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n    with: {to: '${{ itme.id }}', subject: s}\n",
            "r.yaml:10:21: steps[0].with.to: unknown name 'itme' in an expression",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n    with: {to: '${{ vars.x }}', subject: s}\n",
            "r.yaml:10:21: steps[0].with.to: unknown variable 'x'",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n    with: {to: 'x ${{ (1 }}', subject: s}\n",
            "r.yaml:10:26: steps[0].with.to: expected `)` to close the `(`, found `}}`",
        ),
        (
            "steps:\n  - id: a\n    use: demo.send\n    with:\n      to: |\n        Hello\n"
            "        ${{ nope( }}\n      subject: s\n",
            "r.yaml:13:13: steps[0].with.to: unknown function `nope`",
        ),
    ],
)
def test_expression_problems_at_the_exact_column(
    registry: Registry, body: str, expected: str
) -> None:
    assert check(registry, body) == [expected]


def test_trigger_scopes(registry: Registry) -> None:
    body = """\
trigger:
  use: demo.list_orders
  with:
    limit: ${{ item.n }}
    status: ${{ steps.a.output }}
    limit2: ${{ output.n }}
  key: ${{ steps.a.output.id }}
  items: ${{ item }}
  cursor: ${{ error.step }}
steps:
  - {id: a, use: demo.send, with: {to: x, subject: y}}
"""
    assert check(registry, body) == [
        "r.yaml:10:16: trigger.with.limit: `item` is not available here",
        "r.yaml:11:17: trigger.with.status: `steps` is not available here",
        "r.yaml:12:17: trigger.with.limit2: `output` is not available here",
        "r.yaml:13:12: trigger.key: `steps` is not available here",
        "r.yaml:14:14: trigger.items: `item` is not available here",
        "r.yaml:15:15: trigger.cursor: `error` is not available here",
    ]
    ok = TRIGGER.replace("key: ${{ item.id }}", "key: ${{ cursor ?? output.next ?? item.id }}")
    assert check(registry, ok + "steps:\n  - {id: a, wait: {for: 1s}}\n") == []


def test_connection_settings_cannot_use_items(registry: Registry) -> None:
    header = (
        "flowkit: 1\nname: demo\nconnections:\n  demo:\n    with:\n      api_key: ${{ item.key }}\n"
    )
    body = TRIGGER + "steps:\n  - {id: a, use: demo.send, with: {to: x, subject: y}}\n"
    assert check(registry, body, header=header) == [
        "r.yaml:6:20: connections.demo.with.api_key: `item` is not available here"
    ]


def test_for_each_output_is_a_list(registry: Registry) -> None:
    body = """\
steps:
  - id: many
    use: demo.create_invoice
    for_each: [1, 2]
    with: {customer: c, amount: "${{ each }}"}
  - id: use
    use: demo.send
    with:
      to: ${{ steps.many.output[0].number }}
      subject: ${{ steps.many.output.number }}
      body: ${{ steps.many.output[0].nmber }}
"""
    assert check(registry, body) == [
        "r.yaml:16:20: steps[1].with.subject: step 'many' runs for_each: its output is a list, "
        "not a mapping",
        "r.yaml:17:17: steps[1].with.body: 'nmber' is not a field of the output of "
        "demo.create_invoice (Invoice)",
    ]


def test_open_output_models_accept_unknown_fields(registry: Registry) -> None:
    body = (
        TRIGGER
        + """\
steps:
  - id: a
    use: demo.send
    with: {to: x, subject: "${{ steps.b.output.whatever }}"}
    needs: [b]
  - {id: b, use: demo.send, with: {to: x, subject: y}}
  - id: c
    use: demo.send
    with: {to: "${{ item.lines[0].sku }}", subject: "${{ item.lines[0].price }}"}
"""
    )
    assert check(registry, body) == [
        "r.yaml:21:58: steps[2].with.subject: 'price' is not a field of an item of "
        "demo.list_orders (Line)",
    ]


def test_connector_and_action_problems(registry: Registry) -> None:
    body = """\
trigger:
  use: demo.create_invoice
  key: ${{ item.id }}
steps:
  - {id: a, use: nope.send}
  - {id: b, use: demo.sned}
  - {id: c, use: demo.send, connection: other, with: {to: x, subject: y}}
"""
    assert check(registry, body) == [
        "r.yaml:8:3: trigger.with: missing required input 'amount' for demo.create_invoice",
        "r.yaml:8:3: trigger.with: missing required input 'customer' for demo.create_invoice",
        "r.yaml:8:8: trigger.use: the trigger must use a read action; 'demo.create_invoice' is a "
        "write action",
        "r.yaml:11:18: steps[0].use: unknown connector 'nope'",
        "r.yaml:12:18: steps[1].use: connector 'demo' has no action 'sned'",
        "r.yaml:13:41: steps[2].connection: unknown connection 'other'",
    ]


def test_connections_are_matched(registry: Registry) -> None:
    header = """\
flowkit: 1
name: demo
connections:
  live:
    connector: demo
    with: {api_key: "${{ secrets.LIVE }}", timeout: 5}
  test:
    connector: demo
    with: {api_key: k, base_url: "${{ env.BASE }}", extra: 1}
  noop: {}
  broken:
    connector: nosuch
"""
    body = """\
steps:
  - {id: a, use: demo.send, with: {to: x, subject: y}}
  - {id: b, use: demo.send, connection: live, with: {to: x, subject: y}}
  - {id: c, use: demo.send, connection: noop, with: {to: x, subject: y}}
"""
    assert check(registry, body, header=header) == [
        "r.yaml:9:53: connections.test.with: unknown setting 'extra' for connector 'demo'",
        "r.yaml:12:16: connections.broken.connector: unknown connector 'nosuch'",
        "r.yaml:14:18: steps[0].use: several connections use connector 'demo' (live, test)",
        "r.yaml:16:41: steps[2].connection: connection 'noop' is for connector 'noop', but the "
        "step uses 'demo.send'",
    ]


def test_expressions_are_exempt_from_type_checks_but_count_as_present(
    registry: Registry,
) -> None:
    body = """\
steps:
  - id: a
    use: demo.create_invoice
    with:
      customer: ${{ vars.c }}
      amount: ${{ 1 + 1 }}
      lines:
        - {sku: "${{ 'a' }}", qty: "${{ 2 }}"}
        - {sku: b, qty: many}
vars: {c: x}
"""
    assert check(registry, body) == [
        "r.yaml:15:25: steps[0].with.lines[1].qty: Input should be a valid integer, unable to "
        "parse string as an integer (got 'many')",
    ]


def test_shapes_of_if_for_each_and_until(registry: Registry) -> None:
    body = """\
steps:
  - id: a
    use: demo.send
    if: "{{ vars.on }}"
    for_each: "${{ [1] }} and ${{ [2] }}"
    with: {to: x, subject: y}
  - id: b
    wait: {until: next tuesday}
  - id: c
    wait: {until: "2026-01-31T09:00:00Z"}
  - id: d
    wait: {until: 1767225600}
  - id: e
    use: demo.send
    if: true
    for_each: [a, b]
    with: {to: x, subject: y}
vars: {on: true}
"""
    problems = check(registry, body)
    assert problems == [
        "r.yaml:10:9: steps[0].if: `if` must be true, false or a single ${{ }} expression",
        "r.yaml:11:15: steps[0].for_each: `for_each` must be a list or a single ${{ }} expression",
        "r.yaml:14:19: steps[1].wait.until: 'next tuesday' is not a time",
    ]
    assert hints(registry, body)[:2] == [
        "write if: ${{ vars.on }}",
        "write one expression for the whole value, combining parts with operators",
    ]


def test_secrets_declared_and_environment(registry: Registry) -> None:
    body = """\
secrets:
  DEMO_KEY: the key
  OPTIONAL: {required: false}
  REQUIRED: {description: needed}
steps:
  - id: a
    use: demo.send
    with: {to: "${{ env.SENDER }}", subject: "${{ secrets.DEMO_KEY }} ${{ secrets.OPTIONAL }}"}
"""
    assert check(registry, body) == []
    # an optional secret may stay unset: the engine runs without it
    assert check(registry, body, check_env=True, env={"DEMO_KEY": "k"}) == [
        "r.yaml:10:3: secrets.REQUIRED: secret REQUIRED is not set",
        "r.yaml:14:21: steps[0].with.to: environment variable SENDER is not set",
    ]
    env = {"DEMO_KEY": "k", "OPTIONAL": "o", "REQUIRED": "r", "SENDER": "s"}
    assert check(registry, body, check_env=True, env=env) == []


def test_undeclared_secrets_are_fine_until_the_recipe_declares_some(registry: Registry) -> None:
    body = "steps:\n  - {id: a, use: demo.send, with: {to: '${{ secrets.TO }}', subject: y}}\n"
    assert check(registry, body) == []
    assert check(registry, body, check_env=True, env={}) == [
        "r.yaml:6:20: connections.demo.with.api_key: secret DEMO_KEY is not set",
        "r.yaml:8:45: steps[0].with.to: secret TO is not set",
    ]
    declared = "secrets: {DEMO_KEY: null}\n" + body
    assert check(registry, declared) == ["r.yaml:9:45: steps[0].with.to: unknown secret 'TO'"]


def test_vars_are_rendered_once_per_run(registry: Registry) -> None:
    body = """\
vars:
  ok: {b: ['${{ env.X }} ${{ secrets.DEMO_KEY }} ${{ run.id }}']}
  bad: ${{ vars.ok }} ${{ item.id }} ${{ run.nope }}
steps:
  - {id: a, wait: {for: 1s}}
"""
    assert check(registry, body) == [
        "r.yaml:9:12: vars.bad: `vars` is not available here",
        "r.yaml:9:27: vars.bad: `item` is not available here",
        "r.yaml:9:42: vars.bad: `run` has no field 'nope'",
    ]


def test_error_fields(registry: Registry) -> None:
    body = """\
steps:
  - {id: a, wait: {for: 1s}}
on_failure:
  - id: tell
    use: demo.send
    with: {to: x, subject: "${{ error.step }} ${{ error.mesage }} ${{ error.final }}"}
"""
    _, problems = check_source((HEADER + body).encode(), "r.yaml", registry=registry)
    assert [(p.message, p.hint) for p in problems] == [
        ("on_failure[0].with.subject: `error` has no field 'mesage'", "did you mean 'message'?")
    ]


def test_problems_are_sorted_and_unique(registry: Registry) -> None:
    body = """\
steps:
  - {id: b, use: demo.send, with: {to: "${{ steps.x.output }} ${{ steps.x.output }}", subject: y}}
  - {id: a, use: demo.sendd}
"""
    assert check(registry, body) == [
        "r.yaml:8:45: steps[0].with.to: unknown step 'x'",
        "r.yaml:8:67: steps[0].with.to: unknown step 'x'",
        "r.yaml:9:18: steps[1].use: connector 'demo' has no action 'sendd'",
    ]


def test_union_errors_are_merged(registry: Registry) -> None:
    body = """\
secrets:
  DEMO_KEY:
  A: {descripton: x}
  B: 5
steps:
  - {id: a, wait: {for: 1s}, if: [1], for_each: {a: 1}}
"""
    assert check(registry, body) == [
        "r.yaml:9:7: secrets.A: unknown key 'descripton'",
        "r.yaml:10:6: secrets.B: Input should be a mapping or a valid string (got 5)",
        "r.yaml:12:34: steps[0].if: Input should be a valid string or a valid boolean",
        "r.yaml:12:49: steps[0].for_each: Input should be a valid string or a valid list",
    ]


def test_invalid_names_point_at_the_key(registry: Registry) -> None:
    body = "vars:\n  ok: 1\n  not-ok: 2\nsteps:\n  - {id: a, wait: {for: 1s}}\n"
    assert check(registry, body) == [
        "r.yaml:9:3: vars: 'not-ok' is not a valid name (letters, digits and _)"
    ]


def test_unsupported_version(registry: Registry) -> None:
    text = "flowkit: 2\nname: x\nsteps: [{id: a, wait: {for: 1s}}]\n"
    _, problems = check_source(text, "r.yaml", registry=registry)
    assert [(p.format()) for p in problems] == [
        "r.yaml:1:10: flowkit: unsupported recipe format version 2\n"
        "  hint: this flowkit reads format 1 (`flowkit: 1`)"
    ]
    _, problems = check_source(text.replace("2", "'1'", 1), "r.yaml", registry=registry)
    assert problems[0].message == "flowkit: the format version must be the number 1, not text"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("steps", 2, "with", "to"), "steps[2].with.to"),
        (("a b", 0), '["a b"][0]'),
        ((), ""),
        (("vars", "my-var"), "vars.my-var"),
    ],
)
def test_render_path(path: tuple[str | int, ...], text: str) -> None:
    assert render_path(path) == text


def test_check_env_accepts_an_env_variable_with_a_default(registry: Registry) -> None:
    body = """\
steps:
  - id: a
    use: demo.send
    with: {to: "${{ env.SENDER ?? 'shop@example.com' }}", subject: "${{ env.TOPIC }}"}
"""
    problems = check(registry, body, check_env=True, env={"DEMO_KEY": "k"})
    assert [p.split(": ", 1)[1] for p in problems] == [
        "steps[0].with.subject: environment variable TOPIC is not set"
    ]
