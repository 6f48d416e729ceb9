"""Pieces of one item's run that are cheaper than the library calls they stand for."""

from __future__ import annotations

import datetime as dt
import enum

from pydantic import BaseModel, Field

from flowkit.engine.scope import to_plain


class Colour(enum.Enum):
    RED = "red"


class Inner(BaseModel):
    when: dt.datetime
    colour: Colour


class Output(BaseModel):
    charge_id: str = Field(alias="chargeId")
    inner: Inner
    tags: tuple[str, ...] = ()
    amount: float | None = None


def test_outputs_are_plain_exactly_as_model_dump_gives_them() -> None:
    output = Output(
        chargeId="ch_1",
        inner=Inner(when=dt.datetime(2026, 1, 2, 3, 4, 5), colour=Colour.RED),
        tags=("a", "b"),
    )
    plain = to_plain(output)
    assert plain == output.model_dump(mode="json", by_alias=True)
    assert plain == {
        "chargeId": "ch_1",
        "inner": {"when": "2026-01-02T03:04:05", "colour": "red"},
        "tags": ["a", "b"],
        "amount": None,
    }
    assert to_plain({"already": "plain"}) == {"already": "plain"}
