"""Recipe tests (`flowkit test`) and helpers for testing recipes and connectors from pytest.

A test file (`*.test.yaml`, format in docs/testing.md) names a recipe and lists tests. Each
test runs the recipe through the real engine (`run_recipe`) with a `FakeClock`, a temporary
SQLite state store and a registry whose connectors are replaced by `FixtureConnector`s:
stand-in actions with the real actions' input and output models, effect and idempotency,
whose `run()` answers from the test's mocks (reads) or records the call (writes). Nothing
leaves the process and no credential is needed.

    spec.py        the test file format (pydantic models) and its checks against the recipe
    fixtures.py    FixtureConnector / FixtureAction and the mock responder that records calls
    runner.py      running a test through the engine, expectations, discovery
    connectors.py  helpers for connector plugin tests: `call_action`, `check_connector`
"""

from __future__ import annotations

from flowkit.testing.connectors import MemoryKV, call_action, check_connector
from flowkit.testing.fixtures import (
    FixtureAction,
    FixtureConnector,
    RecordedCall,
    Responder,
    base_step,
    fixture_registry,
)
from flowkit.testing.runner import (
    TestResult,
    arun_test_file,
    discover,
    run_test_file,
    subset_diff,
)
from flowkit.testing.spec import TestFile, TestFileInvalid, load_test_file, parse_now

__all__ = [
    "FixtureAction",
    "FixtureConnector",
    "MemoryKV",
    "RecordedCall",
    "Responder",
    "TestFile",
    "TestFileInvalid",
    "TestResult",
    "arun_test_file",
    "base_step",
    "call_action",
    "check_connector",
    "discover",
    "fixture_registry",
    "load_test_file",
    "parse_now",
    "run_test_file",
    "subset_diff",
]
