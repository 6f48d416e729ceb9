"""`flowkit test` semantics: the sample recipes and tests under fixtures/, run in-process."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowkit.connectors.registry import Registry
from flowkit.testing import TestResult, arun_test_file, run_test_file

from .conftest import FIXTURES

NOW = 1_772_442_000.0  # 2026-03-02T09:00:00Z


def by_name(results: list[TestResult]) -> dict[str, TestResult]:
    return {r.name: r for r in results}


async def test_the_noop_sample_passes(registry: Registry) -> None:
    results = await arun_test_file(FIXTURES / "noop" / "hello.test.yaml", registry=registry)
    assert [r.name for r in results] == [
        "writes and notifies every new item, then nothing on the next run",
        "items already done are not repeated and the stored cursor is sent",
        "mocked outputs may use the call and the input",
    ]
    assert all(r.passed for r in results), "\n".join(r.report() for r in results)
    first = results[0]
    # two runs: the trigger is listed in both, the writes happen once
    assert [(c.run, c.step) for c in first.calls if c.step == "trigger"] == [
        (1, "trigger"),
        (2, "trigger"),
    ]
    assert [c.item for c in first.calls if c.use == "noop.write"] == ["a-1", "a-2"]


async def test_the_shop_sample_passes(registry: Registry) -> None:
    results = await arun_test_file(FIXTURES / "shop" / "invoice.test.yaml", registry=registry)
    assert all(r.passed for r in results), "\n".join(r.report() for r in results)


async def test_retries_follow_the_policy_on_the_fake_clock(registry: Registry) -> None:
    results = by_name(
        await arun_test_file(FIXTURES / "shop" / "invoice.test.yaml", registry=registry)
    )
    calls = results["transient errors are retried per attempt on the fake clock"].calls
    invoice = [c for c in calls if c.step == "invoice"]
    start = invoice[0].at
    # backoff 10s, then 20s raised to the provider's Retry-After of 45s; no real sleeping
    assert [c.at - start for c in invoice] == [0.0, 10.0, 55.0]
    assert [c.error for c in invoice] == [
        "HTTP 503 from POST /invoices",
        "mocked rate_limited error",
        None,
    ]
    assert invoice[0].key == invoice[2].key  # one idempotency key for every attempt


async def test_a_failed_item_is_retried_by_the_next_run_with_the_same_key(
    registry: Registry,
) -> None:
    results = by_name(
        await arun_test_file(FIXTURES / "shop" / "invoice.test.yaml", registry=registry)
    )
    result = results["an item that fails is retried by the next run with the same idempotency key"]
    assert result.passed, result.report()
    invoice = [c for c in result.calls if c.step == "invoice"]
    assert [(c.run, c.attempt, c.outcome) for c in invoice] == [
        (1, 1, "error"),
        (1, 2, "error"),
        (1, 3, "error"),
        (2, 1, "ok"),
    ]
    assert len({c.key for c in invoice}) == 1


async def test_waits_span_runs_with_advance(registry: Registry) -> None:
    [result] = await arun_test_file(FIXTURES / "shop" / "reminder.test.yaml", registry=registry)
    assert result.passed, result.report()
    remind = [c for c in result.calls if c.step == "remind"]
    assert [(c.run, c.item, c.at - NOW) for c in remind] == [(3, "o-1", 3 * 86400.0)]


def test_a_failing_expectation_reports_where_and_what(registry: Registry) -> None:
    path = FIXTURES / "failing" / "hello.test.yaml"
    [result] = run_test_file(path, registry=registry)
    assert not result.passed
    assert result.failures == [
        f"{path}:8:21: items.done: expected 2, got 1",
        f'{path}:10:11: writes[0]: with.data.id: expected "a-9", got "a-1"\n'
        '  got: noop.write (step record, item a-1, attempt 1) with {"data": {"id": "a-1", "n": 1}}',
    ]
    assert result.report().splitlines()[0] == "FAIL  expects too much"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


RECIPE = """\
    flowkit: 1
    name: small
    vars: {greeting: hi}
    secrets:
      TOKEN: a token
    trigger:
      use: shop.list_orders
      with: {cursor: "${{ cursor }}"}
      key: ${{ item.id }}
      cursor: ${{ output.cursor }}
    connections:
      shop:
        with: {token: "${{ secrets.TOKEN }}"}
    steps:
      - id: customer
        use: shop.get_customer
        with: {email: "${{ item.email }}"}
      - id: invoice
        use: shop.create_invoice
        with:
          order_id: ${{ item.id }}
          customer_id: ${{ steps.customer.output.id }}
          amount: ${{ item.total }}
      - id: hook
        use: shop.post_webhook
        with: {text: "${{ vars.greeting }} ${{ secrets.TOKEN }} ${{ steps.invoice.output.id }}"}
"""

TRIGGER = """\
recipe: small.yaml
mocks:
  trigger:
    output: {items: [{id: o-1, email: ann@example.com, total: 5}], cursor: 1}
"""


def small_test(tmp_path: Path, rest: str) -> Path:
    """small.yaml and a test file: the trigger mock, then `rest` (dedented)."""
    write(tmp_path, "small.yaml", RECIPE)
    return write(tmp_path, "small.test.yaml", TRIGGER + textwrap.dedent(rest))


def test_a_read_without_a_mock_fails_the_test_with_the_fix(
    tmp_path: Path, registry: Registry
) -> None:
    path = small_test(
        tmp_path,
        """\
        tests:
          - name: forgot the customer
            expect: {status: failed}
    """,
    )
    [result] = run_test_file(path, registry=registry)
    assert result.failures == [
        f"{path}:6:11: step customer (shop.get_customer) has no mock for item o-1; "
        "add `mocks.customer`"
    ]


def test_unmocked_writes_get_simulated_outputs_and_secrets_are_fake(
    tmp_path: Path, registry: Registry
) -> None:
    path = small_test(
        tmp_path,
        """\
          customer: {output: {id: c-1, email: ann@example.com}}
        tests:
          - name: writes are recorded
            vars: {greeting: hello}
            expect:
              status: ok
              writes:
                - {step: invoice, with: {order_id: o-1, customer_id: c-1, amount: 5}}
                - {step: hook}
    """,
    )
    [result] = run_test_file(path, registry=registry)
    assert result.passed, result.report()
    invoice, hook = [c for c in result.calls if c.effect != "read"]
    assert invoice.output == {
        "id": f"dryrun-{invoice.key[-8:]}",
        "number": f"dryrun-{invoice.key[-8:]}",
    }
    assert hook.input["text"] == f"hello test-TOKEN dryrun-{invoice.key[-8:]}"


def test_a_mocked_output_that_breaks_the_model_at_run_time_points_at_the_mock(
    tmp_path: Path, registry: Registry
) -> None:
    path = small_test(
        tmp_path,
        """\
          customer: {output: {id: "${{ input.missing ?? null }}", email: x@example.com}}
        tests:
          - name: bad rendered output
    """,
    )
    [result] = run_test_file(path, registry=registry)
    assert result.failures == [
        f"{path}:5:22: the mocked output does not fit shop.get_customer: id: "
        "Input should be a valid string"
    ]


@pytest.mark.parametrize(
    "mock,kind,unknown",
    [
        ("{error: {kind: timeout, maybe_sent: true}}", "timeout", False),
        ("{error: {kind: permanent, maybe_sent: true}}", "permanent", True),
    ],
)
def test_unknown_outcomes_follow_the_real_idempotency_rules(
    tmp_path: Path, registry: Registry, mock: str, kind: str, unknown: bool
) -> None:
    path = small_test(
        tmp_path,
        f"""\
          customer: {{output: {{id: c-1, email: ann@example.com}}}}
          invoice: {{output: {{id: inv-1, number: N-1}}}}
          hook: {mock}
        tests:
          - name: webhook outcome
    """,
    )
    [result] = run_test_file(path, registry=registry)
    hooks = [c for c in result.calls if c.step == "hook"]
    # post_webhook has no idempotency: a maybe-sent failure is never repeated
    assert len(hooks) == 1 and hooks[0].error == f"mocked {kind} error"
    assert result.passed
