"""flowkit.jsontext's kept encoders give the text of the `json.dumps` calls they replace."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from flowkit import jsontext

VALUES: list[Any] = [
    {"b": 1, "a": [1, 2.5, None, True, False], "c": {"z": "é", "y": "\u2028"}},
    ["x", 0, -1.25e-7, 10**20],
    "plain",
    {"nested": [{"k": [[]]}, {}]},
]


@pytest.mark.parametrize("value", VALUES)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert jsontext.compact(value) == json.dumps(value, separators=(",", ":"), default=str)
    assert jsontext.canonical(value) == json.dumps(
        value, separators=(",", ":"), default=str, sort_keys=True
    )
    assert jsontext.wire(value) == json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def test_compact_turns_other_values_into_text_and_wire_refuses_them() -> None:
    assert jsontext.compact({"d": date(2026, 11, 26)}) == '{"d":"2026-11-26"}'
    with pytest.raises(TypeError, match="date is not JSON serializable"):
        jsontext.wire({"d": date(2026, 11, 26)})
    with pytest.raises(ValueError, match="Out of range float"):
        jsontext.wire({"x": float("nan")})
    assert jsontext.compact(float("nan")) == "NaN"
