"""Golden tests: the exact `file:line:col: message` lines and hints for files with mistakes."""

from __future__ import annotations

import textwrap
from pathlib import Path

from flowkit.connectors.registry import Registry
from flowkit.recipe.loader import check_path

MISTAKES = """\
flowkit: 1
name: invoice-on-payment
description: A recipe with one mistake of each kind.
secrets:
  DEMO_KEY: the API key
vars:
  currency: EUR
  sender: "${{ env.SENDER }}"
connections:
  demo:
    with:
      api_key: ${{ secrets.DEMO_KEY }}
      timeout: soon
      retries: 3
trigger:
  use: demo.list_orders
  with:
    status: shipped
    cursor: ${{ cursor }}
  key: ${{ item.id }}
  cursor: ${{ output.next }}
steps:
  - id: invoice
    use: demo.create_invoice
    with:
      customer: ${{ item.emial }}
      amount: -5
      currency: ${{ vars.curency }}
      lines: ${{ item.lines }}
  - id: email
    use: demo.send
    needs: [invoce]
    if: steps.invoice.output.number > 0
    with:
      to: ${{ item.email }}
      subject: "Invoice ${{ steps.invoice.output.numbr }}"
      body: "Total: ${{ item.total + }}"
  - id: Remind
    use: demo.sendd
  - id: wait_a_bit
    wait: {for: 3 days}
  - id: mark
    use: demo.create_invoice
    on_error: ignore
    timout: 30s
    with:
      customer: ${{ secrets.DEMO_KY }}
      amount: 1
  - id: invoice
    use: demo.send
    with: {to: a, subject: b}
on_failure:
  - id: alert
    use: demo.send
    with:
      to: ops@example.com
      subject: "failed: ${{ error.message }} at ${{ each }}"
"""

EXPECTED = """\
recipes/x.yaml:5:3: secrets.DEMO_KEY: secret DEMO_KEY is not set
  hint: set it in the environment or in a .env file (see `--env-file`)
recipes/x.yaml:8:16: vars.sender: environment variable SENDER is not set
  hint: set it in the environment or in a .env file (see `--env-file`)
recipes/x.yaml:13:16: connections.demo.with.timeout: Input should be a valid number, \
unable to parse string as a number (got 'soon')
recipes/x.yaml:14:7: connections.demo.with: unknown setting 'retries' for connector 'demo'
  hint: allowed keys: api_key, base_url, timeout
recipes/x.yaml:18:13: trigger.with.status: Input should be 'paid' or 'open' (got 'shipped')
recipes/x.yaml:26:21: steps[0].with.customer: 'emial' is not a field of an item of \
demo.list_orders (Order)
  hint: did you mean 'email'?
recipes/x.yaml:27:15: steps[0].with.amount: Input should be greater than 0 (got -5)
recipes/x.yaml:28:21: steps[0].with.currency: unknown variable 'curency'
  hint: did you mean 'currency'?
recipes/x.yaml:32:13: steps[1].needs[0]: unknown step 'invoce'
  hint: did you mean 'invoice'?
recipes/x.yaml:33:9: steps[1].if: `if` must be true, false or a single ${{ }} expression
  hint: write if: ${{ steps.invoice.output.number > 0 }}
recipes/x.yaml:36:29: steps[1].with.subject: 'numbr' is not a field of the output of \
demo.create_invoice (Invoice)
  hint: did you mean 'number'?
recipes/x.yaml:37:38: steps[1].with.body: expression ends too early: a value is missing
recipes/x.yaml:38:9: steps[2].id: 'Remind' is not a valid step id
  hint: use lowercase letters, digits and `_`, starting with a letter, e.g. create_invoice
recipes/x.yaml:39:10: steps[2].use: connector 'demo' has no action 'sendd'
  hint: did you mean 'demo.send'?
recipes/x.yaml:41:17: steps[3].wait.for: '3 days' is not a duration; use a number of \
seconds or text like '30s', '5m', '2h', '3d', '1w' or '1h30m'
recipes/x.yaml:44:15: steps[4].on_error: Input should be 'fail' or 'continue' (got 'ignore')
recipes/x.yaml:45:5: steps[4]: unknown key 'timout'
  hint: did you mean 'timeout'?
recipes/x.yaml:47:21: steps[4].with.customer: unknown secret 'DEMO_KY'
  hint: did you mean 'DEMO_KEY'?
recipes/x.yaml:49:9: steps[5].id: duplicate step id 'invoice' (first on line 23)
  hint: step ids must be unique across `steps` and `on_failure`
recipes/x.yaml:57:53: on_failure[0].with.subject: `each` is not available here
  hint: `each` and `index` exist only in the `with` of a step that has `for_each`
"""


def run_check(
    tmp_path: Path,
    text: str,
    registry: Registry,
    *,
    check_env: bool = False,
    env: dict[str, str] | None = None,
) -> str:
    """The formatted problems of `text` saved as recipes/x.yaml, named relative to tmp_path."""
    (tmp_path / "recipes").mkdir(exist_ok=True)
    path = tmp_path / "recipes" / "x.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    _, problems = check_path(path, registry=registry, check_env=check_env, env=env)
    output = "".join(p.format() + "\n" for p in problems)
    return output.replace(f"{tmp_path}/", "")


def test_every_mistake_of_a_file_at_once(tmp_path: Path, registry: Registry) -> None:
    output = run_check(tmp_path, MISTAKES, registry, check_env=True, env={})
    assert output == EXPECTED


def test_structure_problems(tmp_path: Path, registry: Registry) -> None:
    text = """\
        name: Bad Name
        trigger:
          use: demo.list_orders
          key: item.id
        steps:
          - use: demo.send
            with: {to: a, subject: b}
          - id: a
            use: demo.send
            wait: {for: 1h}
          - just a string
        max_item_failures: 0
        """
    assert run_check(tmp_path, text, registry) == textwrap.dedent(
        """\
        recipes/x.yaml:1:1: missing required key 'flowkit'
          hint: add `flowkit: 1` (the recipe format version) at the top
        recipes/x.yaml:1:7: name: 'Bad Name' is not a valid recipe name
          hint: use lowercase letters, digits, `-`, `_` and `.`, e.g. invoice-on-payment
        recipes/x.yaml:3:8: trigger.use: connector 'demo' needs a connection (settings: api_key)
          hint: add `connections: {demo: {with: {...}}}` to the recipe
        recipes/x.yaml:4:8: trigger.key: 'item.id' is not a ${{ }} expression
          hint: write ${{ item.id }}
        recipes/x.yaml:6:5: steps[0]: missing required key 'id'
        recipes/x.yaml:8:5: steps[1].with: missing required input 'subject' for demo.send
        recipes/x.yaml:8:5: steps[1].with: missing required input 'to' for demo.send
        recipes/x.yaml:8:5: steps[1]: a step needs exactly one of 'use' or 'wait'
        recipes/x.yaml:11:5: steps[2]: Input should be a mapping (got 'just a string')
        recipes/x.yaml:12:20: max_item_failures: Input should be greater than or equal to 1 \
(got 0)
        """
    )


def test_cycles_and_references(tmp_path: Path, registry: Registry) -> None:
    text = """\
        flowkit: 1
        name: cycles
        connections:
          demo: {with: {api_key: x}}
        steps:
          - id: a
            use: demo.send
            with: {to: "${{ steps.c.output.delivered }}", subject: s}
          - id: b
            use: demo.send
            needs: [a]
            with: {to: "${{ steps.b.output }}", subject: s}
          - id: c
            use: demo.send
            needs: [b]
            with: {to: "${{ steps.alert.output }}", subject: "${{ steps.nope }}"}
        on_failure:
          - id: alert
            use: demo.send
            needs: [a]
            with: {to: "${{ steps.a.output.delivered }}", subject: "${{ item }}"}
        """
    assert run_check(tmp_path, text, registry) == textwrap.dedent(
        """\
        recipes/x.yaml:6:5: steps[0]: dependency cycle: a -> b -> c -> a
          hint: remove one of the `needs` or `steps.<id>` references
        recipes/x.yaml:12:21: steps[1].with.to: step 'b' reads its own output
          hint: a step can only read the outputs of steps before it
        recipes/x.yaml:16:21: steps[2].with.to: 'alert' is an `on_failure` hook; steps cannot \
read its output
        recipes/x.yaml:16:59: steps[2].with.subject: unknown step 'nope'
          hint: known steps: a, b, c
        recipes/x.yaml:20:13: on_failure[0].needs[0]: 'a' is in `steps`; a step can only need \
steps of its own list (`on_failure`)
        recipes/x.yaml:21:65: on_failure[0].with.subject: `item` is not available here
          hint: `item` exists only in recipes with a `trigger`
        """
    )
