"""Fault knobs shared by the sandbox's store stand-ins (WooCommerce, Shopify): queued
throttling, outages, malformed answers, dropped connections and latency, for fault tests."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["Faults"]


@dataclass
class Faults:
    """Fault knobs for tests; queued faults apply to the next requests, in order.

    `throttle(n, retry_after)` → the next n requests get 429 with `Retry-After`;
    `unavailable(n)` → 503; `malformed(n)` → 200 with a body that is not JSON;
    `drop_after_write(n)` → the next n writes are applied, then the connection is closed
    without an answer; `latency` delays every answer (seconds).
    """

    latency: float = 0.0
    queue: deque[tuple[str, float]] = field(default_factory=deque)
    drops: int = 0

    def throttle(self, n: int = 1, retry_after: float = 2.0) -> None:
        self.queue.extend(("throttle", retry_after) for _ in range(n))

    def unavailable(self, n: int = 1) -> None:
        self.queue.extend(("unavailable", 0.0) for _ in range(n))

    def malformed(self, n: int = 1) -> None:
        self.queue.extend(("malformed", 0.0) for _ in range(n))

    def drop_after_write(self, n: int = 1) -> None:
        self.drops += n

    def clear(self) -> None:
        self.queue.clear()
        self.drops = 0
        self.latency = 0.0

    def next_fault(self) -> tuple[str, float] | None:
        return self.queue.popleft() if self.queue else None

    def take_drop(self) -> bool:
        if self.drops > 0:
            self.drops -= 1
            return True
        return False
