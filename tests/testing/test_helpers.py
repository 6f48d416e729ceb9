"""Public helpers of flowkit.testing: matching, discovery, and connector-test helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flowkit.connectors import noop
from flowkit.connectors.base import Action, CallContext, Connector, Effect, Input, Output
from flowkit.errors import ConnectorError, FlowkitError
from flowkit.testing import (
    MemoryKV,
    base_step,
    call_action,
    check_connector,
    discover,
    subset_diff,
)

from .conftest import shop


def test_subset_diff_compares_only_the_expected_keys() -> None:
    actual = {"a": 1, "b": {"c": [1, {"d": "x", "e": 2}], "f": True}, "g": 1.0}
    assert subset_diff({"b": {"c": [1, {"d": "x"}]}}, actual) == []
    assert subset_diff({"g": 1}, actual) == []  # 1 == 1.0
    assert subset_diff({"b": {"f": 1}}, actual) == ["b.f: expected 1, got true"]
    assert subset_diff({"b": {"c": [1]}}, actual) == [
        'b.c: expected [1], got [1, {"d": "x", "e": 2}]'
    ]
    assert subset_diff({"z": None}, actual) == ["z: missing (expected null)"]
    assert subset_diff({"a": {"x": 1}}, actual) == ["a: expected a mapping, got 1"]
    assert subset_diff("7", 7) == ['value: expected "7", got 7']


def test_base_step_strips_fan_out_and_hook_suffixes() -> None:
    assert base_step("invoice") == "invoice"
    assert base_step("email[12]") == "email"
    assert base_step("on_failure.alert#2") == "alert"
    assert base_step("trigger") == "trigger"


def test_discover_finds_test_files_and_skips_hidden_and_virtualenv_dirs(tmp_path: Path) -> None:
    for rel in (
        "a.test.yaml",
        "sub/b.test.yml",
        "sub/c.yaml",
        ".git/d.test.yaml",
        "node_modules/x/e.test.yaml",
        "sub/.hidden/f.test.yaml",
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("recipe: x.yaml\n")
    explicit = tmp_path / "sub" / "c.yaml"
    found = discover([tmp_path, explicit, tmp_path / "a.test.yaml"])
    assert found == [tmp_path / "a.test.yaml", tmp_path / "sub" / "b.test.yml", explicit]
    with pytest.raises(FlowkitError, match="no such file or directory"):
        discover([tmp_path / "missing"])


async def test_call_action_runs_one_action_as_the_engine_would() -> None:
    output = await call_action(noop.connector, "write", {"data": {"a": 1}}, key="fk-1")
    assert output.id == "fk-1" and output.echo == {"a": 1}
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        await call_action(noop.connector, "write", {"data": 1})
    with pytest.raises(ValueError, match="has no action 'wirte'"):
        await call_action(noop.connector, "wirte", {})
    with pytest.raises(ConnectorError, match="never reachable"):
        await call_action(shop, "get_customer", {"email": "a@b"}, settings={"token": "x"})


async def test_memory_kv_keeps_values() -> None:
    kv = MemoryKV()
    assert await kv.get("k") is None
    await kv.set("k", "v")
    assert await kv.get("k") == "v"


class _In(Input):
    x: int = 0


class _Out(Output):
    y: int


class _Good(Action[_In, _Out]):
    name = "go"
    effect = Effect.READ
    Input = _In
    Output = _Out

    async def run(self, session: Any, input: _In, call: CallContext) -> _Out:
        return _Out(y=input.x)


class _NoRun(_Good):
    name = "Bad-Name"


def test_check_connector_reports_what_breaks_the_contract() -> None:
    assert check_connector(noop.connector) == []
    assert check_connector(shop) == []
    assert check_connector(Connector("ok", actions=[_Good()])) == []
    [problem] = check_connector(object())
    assert problem.endswith("is not a flowkit.connectors.base.Connector")
    bad = Connector("Bad", actions=[_NoRun()])
    bad.api_version = 99
    assert check_connector(bad) == [
        "api_version is 99, this flowkit provides 1",
        "name 'Bad' is not lowercase letters, digits and _",
        "action 'Bad-Name': the name is not lowercase letters, digits and _",
    ]
    empty = Connector("empty", settings=dict)  # type: ignore[arg-type]
    assert check_connector(empty) == ["settings is not a pydantic model class", "it has no actions"]

    class Unimplemented(Action[BaseModel, BaseModel]):
        name = "todo"
        Input = _In
        Output = _Out

    assert check_connector(Connector("todo", actions=[Unimplemented()])) == [
        "action 'todo': run() is not implemented"
    ]
