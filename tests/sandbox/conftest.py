"""Fixtures for the sandbox tests: a controllable clock and a served Stripe stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from flowkit.sandbox.server import serve_in_thread
from flowkit.sandbox.stripe import StripeSandbox


class FakeClock:
    """A wall clock that only moves when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class StripeFixture:
    sandbox: StripeSandbox
    url: str
    client: httpx.Client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stripe(clock: FakeClock) -> Iterator[StripeFixture]:
    sandbox = StripeSandbox(clock=clock)
    with (
        serve_in_thread(sandbox.app) as handle,
        httpx.Client(
            base_url=handle.url, auth=(sandbox.api_key, ""), timeout=10, verify=False
        ) as client,
    ):
        yield StripeFixture(sandbox, handle.url, client)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One plain client for ad-hoc requests (creating a client per call costs ~0.1 s)."""
    with httpx.Client(timeout=10, verify=False) as client:  # plain HTTP only
        yield client
