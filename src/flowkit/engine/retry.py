"""The retry policy, compiled from a step's `retry:` into tenacity.

Only errors whose kind is in `retry_on` are retried; a write whose outcome may be unknown
(`maybe_sent`) is retried only when the action is idempotent (or `unsafe_writes: true`).
Delays: exponential from `backoff`, doubling, full jitter, capped at `max_delay`; a provider's
`Retry-After` is honoured up to `max_delay`. `deadline` bounds the total time. Sleeping goes
through the engine's clock, so tests never wait for real.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from flowkit.engine.clock import Clock
from flowkit.errors import ConnectorError
from flowkit.recipe.models import Retry

T = TypeVar("T")

DEFAULT_RETRY = Retry()
NO_RETRY = Retry(attempts=1)


class _StopAtDeadline(stop_base):
    def __init__(self, clock: Clock, start: float, deadline: float | None) -> None:
        self.clock, self.start, self.deadline = clock, start, deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline is not None and self.clock.now() - self.start >= self.deadline


def compute_delay(
    policy: Retry, attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Delay before attempt `attempt + 1`, after `attempt` failures."""
    base = min(policy.max_delay, policy.backoff * (2 ** (attempt - 1)))
    delay = rng.uniform(0, base) if policy.jitter else base
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, policy.max_delay)


async def call_with_retry(
    fn: Callable[[int], Awaitable[T]],
    *,
    policy: Retry,
    clock: Clock,
    may_retry: Callable[[ConnectorError], bool],
    on_retry: Callable[[int, ConnectorError, float], None],
    rng: random.Random | None = None,
    first_error: ConnectorError | None = None,
    start: float | None = None,
) -> tuple[T, int]:
    """Call `fn(attempt)` until it succeeds or the policy gives up; returns (result, attempts).

    Raises the last ConnectorError when giving up; other exceptions are not retried. A caller
    that made the first attempt itself passes its error as `first_error` (and the time it
    started as `start`, for the deadline): the retries go on from attempt 2.
    """
    start = clock.now() if start is None else start
    attempts = 0

    def should_retry(exc: BaseException) -> bool:
        return isinstance(exc, ConnectorError) and exc.kind in policy.retry_on and may_retry(exc)

    # Fast path: most calls succeed at once, and building a tenacity controller costs more
    # than a no-op action. Only a retryable first failure hands over to tenacity.
    if first_error is None:
        try:
            return await fn(1), 1
        except ConnectorError as exc:
            first_error = exc
    if policy.attempts <= 1 or not should_retry(first_error):
        raise first_error
    rng = rng or random.Random()

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = exc.retry_after if isinstance(exc, ConnectorError) else None
        delay = compute_delay(policy, state.attempt_number, after, rng)
        if policy.deadline is not None:
            delay = max(0.0, min(delay, policy.deadline - (clock.now() - start)))
        return delay

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ConnectorError) and state.next_action is not None:
            on_retry(state.attempt_number, exc, state.next_action.sleep)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts) | _StopAtDeadline(clock, start, policy.deadline),
        wait=wait,
        retry=retry_if_exception(should_retry),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    failed_first: ConnectorError = first_error

    async def replay_first_then_call(number: int) -> T:
        if number == 1:
            raise failed_first
        return await fn(number)

    async for attempt in retrying:
        with attempt:
            attempts = attempt.retry_state.attempt_number
            result = await replay_first_then_call(attempts)
    return result, attempts
