"""The SQL helpers' own pieces that stand in for library calls."""

from __future__ import annotations

import json
import math

import pytest

from flowkit.state.sql import ops


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"b":[1,2.5,null,true]}', ' {"a":1}', '{"a":1}\n', '"\\u00e9"', "[]", "1e3"],
)
def test_loads_reads_json_text_as_json_loads_does(text: str) -> None:
    assert ops.loads(text) == json.loads(text)


def test_loads_keeps_none_and_nan_and_rejects_what_json_loads_rejects() -> None:
    assert ops.loads(None) is None
    assert math.isnan(ops.loads("NaN"))
    for bad in ('{"a":', '{"a":1}x', "", "nope"):
        with pytest.raises(json.JSONDecodeError):
            ops.loads(bad)
