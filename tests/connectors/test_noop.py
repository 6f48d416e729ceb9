"""The noop connector: made-up reads with a cursor, echo writes, failures on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from flowkit.connectors import noop
from flowkit.connectors.base import CallContext, ConnectorError, ErrorKind, NoSettings

Call = Callable[..., CallContext]


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    noop.reset_failures()
    yield
    noop.reset_failures()


async def run(runtime: Any, call: CallContext, action: str, **fields: Any) -> Any:
    session = await noop.connector.open(NoSettings(), runtime)
    act = noop.connector.actions[action]
    return await act.run(session, act.Input.model_validate(fields), call)


async def test_read_returns_numbered_items_and_follows_the_cursor(runtime: Any, call: Call) -> None:
    first = await run(runtime, call(), "read", items=3, prefix="ord")
    assert first.model_dump() == {
        "items": [{"id": "ord-1", "n": 1}, {"id": "ord-2", "n": 2}, {"id": "ord-3", "n": 3}],
        "cursor": 3,
    }
    more = await run(runtime, call(), "read", items=5, prefix="ord", cursor=first.cursor)
    assert [i.id for i in more.items] == ["ord-4", "ord-5"] and more.cursor == 5
    done = await run(runtime, call(), "read", items=5, cursor=5)
    assert (done.items, done.cursor) == ([], 5)
    empty = await run(runtime, call(), "read", items=0)
    assert (empty.items, empty.cursor) == ([], None)


async def test_write_echoes_data_with_the_idempotency_key(runtime: Any, call: Call) -> None:
    out = await run(runtime, call("fk-w1"), "write", data={"a": 1, "b": [2]})
    assert out.model_dump() == {"id": "fk-w1", "echo": {"a": 1, "b": [2]}}


async def test_notify(runtime: Any, call: Call) -> None:
    out = await run(runtime, call(), "notify", message="hello")
    assert (out.delivered, out.message) == (True, "hello")


async def test_fail_fails_the_first_n_attempts_per_key_then_succeeds(
    runtime: Any, call: Call
) -> None:
    for attempt in (1, 2):
        with pytest.raises(ConnectorError) as caught:
            await run(runtime, call("fk-a", attempt), "fail", kind="rate_limited", times=2,
                      retry_after=1.5)  # fmt: skip
        err = caught.value
        assert (err.kind, err.retry_after, err.maybe_sent) == (ErrorKind.RATE_LIMITED, 1.5, False)
        assert str(err) == (
            f"noop.fail: simulated rate_limited failure, too many requests "
            f"(attempt {attempt} of 2 failing)"
        )
    assert (await run(runtime, call("fk-a", 3), "fail", kind="rate_limited", times=2)).attempts == 3
    # another key has its own counter
    with pytest.raises(ConnectorError):
        await run(runtime, call("fk-b"), "fail", kind="transient", times=1)
    assert (await run(runtime, call("fk-b", 2), "fail", times=1)).attempts == 2


async def test_fail_can_mark_an_unknown_outcome_and_zero_times_succeeds(
    runtime: Any, call: Call
) -> None:
    with pytest.raises(ConnectorError) as caught:
        await run(runtime, call("fk-u"), "fail", kind="timeout", maybe_sent=True)
    assert caught.value.kind is ErrorKind.TIMEOUT and caught.value.maybe_sent is True
    assert (await run(runtime, call("fk-z"), "fail", times=0)).attempts == 1


def test_inputs_are_validated() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        noop.connector.actions["read"].Input.model_validate({"items": -1})
    with pytest.raises(ValidationError, match="Input should be 'transient'"):
        noop.connector.actions["fail"].Input.model_validate({"kind": "flaky"})


def test_declared_effects_and_idempotency() -> None:
    got = {
        name: (a.effect.value, a.idempotency.value, a.retry_safe)
        for name, a in noop.connector.actions.items()
    }
    assert got == {
        "read": ("read", "none", True),
        "write": ("write", "header", True),
        "notify": ("notify", "none", False),
        "fail": ("write", "header", True),
    }
