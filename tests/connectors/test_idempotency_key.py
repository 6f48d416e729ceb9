"""The idempotency key is a stable function of the effect's business identity."""

from __future__ import annotations

import pytest

from flowkit.connectors.base import idempotency_key


@pytest.mark.parametrize(
    ("recipe", "item", "step", "key"),
    [
        ("invoice-on-payment", "ch_123", "create_invoice", "fk-41b6534805a0115e9da6f684066da851"),
        ("r", "item-1", "post[2]", "fk-2aee313a339b36052a5024d3484f04a8"),
    ],
)
def test_idempotency_key_is_stable(recipe: str, item: str, step: str, key: str) -> None:
    # Pinned values: a run after an upgrade must resend a write under the key an older
    # version may have sent it with, or the API would apply it twice.
    assert idempotency_key(recipe, item, step) == key
    assert idempotency_key(recipe, item, step) == key  # the prepared hash is not consumed


def test_keys_differ_by_every_part() -> None:
    keys = {
        idempotency_key("a", "b", "c"),
        idempotency_key("a", "b", "d"),
        idempotency_key("a", "x", "c"),
        idempotency_key("z", "b", "c"),
        idempotency_key("a\x1fb", "", "c"),
    }
    assert len(keys) == 5
