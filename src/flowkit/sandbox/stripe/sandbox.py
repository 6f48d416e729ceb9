"""`StripeSandbox`, the test-mode account that tests and `flowkit sandbox` use: construction,
demo data, and the in-process helpers that add objects and set faults."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from flowkit.sandbox.stripe.http import _Http
from flowkit.sandbox.stripe.params import JSON
from flowkit.sandbox.stripe.records import Effect, StripeFaults, _Saved

DEFAULT_API_KEY = "sk_test_flowkit_sandbox"
_FIRST = ["Ada", "Ben", "Carla", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "June"]
_LAST = ["Lovelace", "Okafor", "Marsh", "Patel", "Yilmaz", "Adeyemi", "Berg", "Sato", "Novak"]
_GOODS = ["Ceramic mug", "Linen apron", "Oak board", "Tea sampler", "Wool throw", "Candle set"]
_CITIES = [("Lisbon", "PT", "1100-148"), ("Berlin", "DE", "10115"), ("Austin", "US", "78701")]


class StripeSandbox(_Http):
    """One Stripe test-mode account: the aiohttp `app`, its in-memory objects, an effect
    `ledger` and the `faults` knobs. Thread-safe enough to be driven from a test thread while
    the app is served by `flowkit.sandbox.server.serve_in_thread`."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        clock: Callable[[], float] = time.time,
        rng_seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.clock = clock
        self.customers: dict[str, JSON] = {}
        self.charges: dict[str, JSON] = {}
        self.payment_intents: dict[str, JSON] = {}
        self.refunds: dict[str, JSON] = {}
        self.ledger: list[Effect] = []
        self.faults = StripeFaults()
        self._rng = random.Random(rng_seed)
        self._order: dict[str, tuple[int, int]] = {}
        self._seq = 0
        self._saved: dict[tuple[str, str], _Saved] = {}
        self._lock = threading.RLock()
        self.app = self._build_app()

    # ------------------------------------------------------------------ in-process helpers
    def seed(self, n: int = 3) -> list[JSON]:
        """Add demo customers and `n` succeeded charges (oldest first, an hour apart, ending
        now); deterministic for a given `rng_seed`. Returns the charges added."""
        now = int(self.clock())
        customers = []
        for i in range(max(1, (n + 1) // 2)):
            first, last = _FIRST[i % len(_FIRST)], _LAST[i % len(_LAST)]
            city, country, postal = _CITIES[i % len(_CITIES)]
            customers.append(
                self.add_customer(
                    email=f"{first.lower()}.{last.lower()}{i}@example.com",
                    name=f"{first} {last}",
                    address={
                        "city": city,
                        "country": country,
                        "postal_code": postal,
                        "line1": f"{i + 1} Market Street",
                        "line2": None,
                        "state": None,
                    },
                    created=now - (n + 1) * 3600,
                )
            )
        added = []
        for i in range(n):
            customer = customers[i % len(customers)]
            quantity = self._rng.randint(1, 3)
            product = _GOODS[self._rng.randrange(len(_GOODS))]
            added.append(
                self.add_charge(
                    amount=quantity * self._rng.choice([1200, 1850, 2400, 3200, 4500]),
                    customer=customer["id"],
                    description=f"Order #{1001 + i}: {quantity} x {product}",
                    created=now - (n - 1 - i) * 3600,
                )
            )
        return added

    def add_customer(self, *, created: int | None = None, **fields: Any) -> JSON:
        """Create a customer directly (no ledger entry)."""
        with self._lock:
            return self._new_customer(fields, created)

    def add_charge(
        self,
        amount: int,
        *,
        currency: str = "usd",
        customer: str | None = None,
        description: str | None = None,
        receipt_email: str | None = None,
        billing_details: JSON | None = None,
        metadata: dict[str, str] | None = None,
        created: int | None = None,
        source: str = "pm_card_visa",
    ) -> JSON:
        """Create a charge directly (no ledger entry); declining sources give a failed one."""
        with self._lock:
            return self._new_charge(
                amount=amount, currency=currency, customer=customer, description=description,
                receipt_email=receipt_email, billing_details=billing_details,
                metadata=metadata or {}, created=created, source=source, payment_intent=None,
            )  # fmt: skip

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        retry_after: int | None = 1,
        match: str | None = None,
    ) -> None:
        """The next `count` requests (matching `match`, e.g. "POST /v1/charges"; it applies to
        every counted knob) answer `status` (429 / 5xx) without being processed."""
        with self._lock:
            self.faults.fail_next, self.faults.fail_status = count, status
            self.faults.retry_after, self.faults.match = retry_after, match
