"""Pacing the requests of one HTTP connection: the `RateLimiter` protocol, a `TokenBucket`,
and `parse_retry_after` for the `Retry-After` header (delta-seconds or an HTTP-date)."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # connectors import the pacers with their models: keep httpx out
    import httpx

__all__ = ["RateLimiter", "TokenBucket", "parse_retry_after"]


class RateLimiter(Protocol):
    """Paces requests of one connection. `acquire` before sending, `observe` every answer."""

    async def acquire(self, cost: float = 1) -> None: ...

    def observe(self, response: httpx.Response) -> None: ...


class TokenBucket:
    """At most `rate` requests per second on average, bursts of up to `burst`.

    Concurrent callers reserve tokens in arrival order (the balance may go negative) and each
    sleeps until its reservation is covered. A 429 with `Retry-After` empties the bucket for
    that long, so the other requests of the run back off too.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now
        return now

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while callers wait for reservations)."""
        self._refill()
        return self._tokens

    async def acquire(self, cost: float = 1) -> None:
        self._refill()
        self._tokens -= cost
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)

    def observe(self, response: httpx.Response) -> None:
        if response.status_code != 429:
            return
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if wait:
            self._refill()
            self._tokens = min(self._tokens, -wait * self.rate)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date (RFC 9110
    section 10.2.3). None when absent or unreadable; never negative."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
