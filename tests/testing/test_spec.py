"""Test files are checked like recipes: every problem at its file:line:col, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowkit.connectors.registry import Registry
from flowkit.testing import TestFileInvalid, load_test_file, parse_now

from .conftest import FIXTURES


def problems(path: Path, registry: Registry) -> list[str]:
    with pytest.raises(TestFileInvalid) as caught:
        load_test_file(path, registry=registry)
    return [p.format() for p in caught.value.problems]


def write(tmp_path: Path, text: str, name: str = "x.test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


HELLO = (FIXTURES / "noop" / "hello.yaml").resolve()


def test_schema_problems_point_at_keys_with_hints(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        f"""\
        recipe: {HELLO}
        tests:
          - name: one
            mocks:
              record: {{outputs: {{}}}}
            expect:
              statuss: ok
              items: {{done: many}}
          - nme: two
    """,
    )
    assert problems(path, registry) == [
        f"{path}:5:16: tests[0].mocks.record: unknown key 'outputs'",
        f"{path}:7:7: tests[0].expect: unknown key 'statuss'\n  hint: did you mean 'status'?",
        f"{path}:8:21: tests[0].expect.items.done: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')",
        f"{path}:9:5: tests[1]: missing required key 'name'",
        f"{path}:9:5: tests[1]: unknown key 'nme'\n  hint: did you mean 'name'?",
    ]


def test_references_to_the_recipe_are_checked(tmp_path: Path, registry: Registry) -> None:
    path = write(
        tmp_path,
        f"""\
        recipe: {HELLO}
        vars: {{count: 3}}
        mocks:
          triger: {{output: {{items: []}}}}
          record: {{output: {{id: 1}}}}
        tests:
          - name: one
            now: next tuesday
            expect:
              steps: {{a-1: {{recrd: ok}}}}
              writes: [{{step: tel}}]
          - name: one
    """,
    )
    assert problems(path, registry) == [
        f"{path}:2:8: vars.count: the recipe declares no variable 'count'\n  hint: known: none",
        f"{path}:4:3: mocks.triger: 'triger' is not the trigger, a step id or a connector "
        "action of the recipe\n  hint: did you mean 'trigger'?",
        f"{path}:5:20: mocks.record.output: missing required output field 'echo' of noop.write",
        f"{path}:5:25: mocks.record.output.id: Input should be a valid string (got 1)",
        f"{path}:8:10: tests[0].now: 'next tuesday' is not an ISO-8601 time\n"
        '  hint: write e.g. "2026-11-26T10:00:00Z"',
        f"{path}:10:21: tests[0].expect.steps.a-1.recrd: the recipe has no step 'recrd'\n"
        "  hint: did you mean 'record'?",
        f"{path}:11:23: tests[0].expect.writes[0].step: the recipe has no step 'tel'\n"
        "  hint: did you mean 'tell'?",
        f"{path}:12:11: tests[1].name: duplicate test name 'one' (also test 1)",
    ]


def test_yaml_is_commerce_safe_and_duplicates_are_errors(
    tmp_path: Path, registry: Registry
) -> None:
    path = write(
        tmp_path,
        f"""\
        recipe: {HELLO}
        tests:
          - name: one
            name: two
    """,
    )
    assert problems(path, registry) == [
        f"{path}:4:5: duplicate key 'name' (first on line 3)\n"
        "  hint: remove one of them: YAML would silently keep only the last",
    ]


def test_a_missing_or_invalid_recipe_is_reported(tmp_path: Path, registry: Registry) -> None:
    path = write(tmp_path, "recipe: nowhere.yaml\ntests: [{name: a}]\n")
    assert problems(path, registry) == [
        f"{path}:1:9: recipe: recipe file {tmp_path / 'nowhere.yaml'} not found\n"
        "  hint: the path is relative to the test file",
    ]
    (tmp_path / "broken.yaml").write_text("flowkit: 1\nname: broken\nsteps: []\n")
    path = write(tmp_path, "recipe: broken.yaml\ntests: [{name: a}]\n")
    assert problems(path, registry) == [
        f"{tmp_path / 'broken.yaml'}:3:8: steps: List should have at least 1 item after "
        "validation, not 0",
    ]


def test_mocks_of_a_recipe_without_trigger_and_of_wait_steps(
    tmp_path: Path, registry: Registry
) -> None:
    (tmp_path / "once.yaml").write_text(
        textwrap.dedent("""\
        flowkit: 1
        name: once
        steps:
          - id: pause
            wait: {for: 1h}
          - id: tell
            needs: [pause]
            use: noop.notify
    """)
    )
    path = write(
        tmp_path,
        """\
        recipe: once.yaml
        mocks:
          trigger: {output: {}}
          pause: {output: {}}
        tests: [{name: a}]
    """,
    )
    assert problems(path, registry) == [
        f"{path}:3:3: mocks.trigger: the recipe has no trigger to mock",
        f"{path}:4:3: mocks.pause: step 'pause' is a wait; it calls nothing",
    ]
    path = write(
        tmp_path,
        """\
        recipe: once.yaml
        mocks:
          noop.notify: {error: sometimes}
        tests: [{name: a}]
    """,
    )
    assert problems(path, registry) == [
        f"{path}:3:24: mocks[\"noop.notify\"].error: Input should be 'transient', "
        "'rate_limited', 'timeout', 'auth', 'validation', 'conflict', 'not_found' or "
        "'permanent' or a mapping (got 'sometimes')",
    ]


def test_now_accepts_iso_text_and_unix_seconds() -> None:
    assert parse_now("2026-11-26T10:00:00Z") == 1_795_687_200.0
    assert parse_now("2026-11-26T11:00:00+01:00") == 1_795_687_200.0
    assert parse_now("2026-11-26T10:00:00") == 1_795_687_200.0
    assert parse_now(1_795_687_200) == 1_795_687_200.0
    assert parse_now(None) == 1_767_225_600.0


def test_the_example_in_the_docs_matches_the_format() -> None:
    from flowkit.recipe.yamlload import load_yaml
    from flowkit.testing.spec import FileSpec

    docs = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
    block = docs.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = FileSpec.model_validate(load_yaml(block, "docs/testing.md").data)
    assert spec.recipe == "invoice-on-payment.yaml"
    [case] = spec.tests
    assert case.runs is not None and case.runs[1].advance == 3 * 86400
    assert case.expect is not None and case.expect.writes is not None
