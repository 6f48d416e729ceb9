"""docs/connectors.md's worked example is real code: extract it, run it, check what it does.

The ```python blocks preceded by `<!-- example: helpdesk -->` are concatenated into the module
`flowkit_helpdesk`; the block marked `<!-- example: helpdesk-test -->` is the test the page
shows. Both are written to a temporary directory: the page's own test runs there with pytest
(in a subprocess, as a plugin author would run it), and the tests below drive the module
against this file's own fake helpdesk on 127.0.0.1, which follows the API contract the page
describes. If the page and the SDK drift apart, this fails.
"""

from __future__ import annotations

import importlib
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web

from flowkit.connectors.base import (
    API_VERSION,
    CallContext,
    Change,
    Effect,
    ErrorKind,
    Idempotency,
    Runtime,
)
from flowkit.errors import ConnectorError
from flowkit.sandbox.server import serve_in_thread
from flowkit.testing import MemoryKV, call_action, check_connector

DOC = Path(__file__).resolve().parent.parent / "docs" / "connectors.md"
KEY = "hd-secret-key-0042"
MODULE = "flowkit_helpdesk"

_BLOCK = re.compile(r"<!-- example: ([\w-]+) -->\s*\n```python\n(.*?)\n```\n", re.S)


def blocks(name: str) -> list[str]:
    """The ```python blocks of docs/connectors.md marked `<!-- example: NAME -->`."""
    return [code for marker, code in _BLOCK.findall(DOC.read_text()) if marker == name]


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding `flowkit_helpdesk/__init__.py` built from the page."""
    root = tmp_path_factory.mktemp("helpdesk")
    package = root / MODULE
    package.mkdir()
    (package / "__init__.py").write_text("\n\n\n".join(blocks("helpdesk")) + "\n")
    return root


@pytest.fixture(scope="module")
def helpdesk(package_dir: Path) -> Iterator[ModuleType]:
    sys.path.insert(0, str(package_dir))
    try:
        module = importlib.import_module(MODULE)
        yield module
    finally:
        sys.path.remove(str(package_dir))
        sys.modules.pop(MODULE, None)


# -- a fake helpdesk that follows the contract on the page -----------------------------------


class HelpdeskApi:
    """`/api/v2/tickets` as the page's API description says, strict about what it accepts."""

    def __init__(self) -> None:
        self.tickets: list[dict[str, Any]] = []
        self.first_by_key: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.queued: list[web.Response] = []  # answered before any handler, in order
        self.stuck_token: str | None = None  # a page token the API keeps handing back
        self._ids = itertools.count(101)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard])
        app.router.add_get("/api/v2/tickets", self.list_tickets)
        app.router.add_get("/api/v2/tickets/{id}", self.get_ticket)
        app.router.add_post("/api/v2/tickets", self.create_ticket)
        app.router.add_put("/api/v2/tickets/{id}/status", self.set_status)
        return app

    def add(self, subject: str, updated_at: int, status: str = "open") -> dict[str, Any]:
        ticket = {
            "id": next(self._ids),
            "subject": subject,
            "status": status,
            "priority": "normal",
            "requester_email": "ann@example.com",
            "updated_at": updated_at,
            "channel": "email",  # a field the connector does not model
        }
        self.tickets.append(ticket)
        return ticket

    @staticmethod
    def error(status: int, code: str, message: str, **headers: str) -> web.Response:
        return web.json_response(
            {"error": {"code": code, "message": message}}, status=status, headers=headers
        )

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        if request.headers.get("X-Api-Key") != KEY:
            return self.error(401, "unauthorized", "invalid API key")
        if self.queued:
            return self.queued.pop(0)
        response: web.StreamResponse = await handler(request)
        return response

    def find(self, ident: str) -> dict[str, Any] | None:
        return next((t for t in self.tickets if str(t["id"]) == ident), None)

    async def list_tickets(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        if not 1 <= limit <= 100:
            return self.error(400, "invalid_limit", "limit must be 1-100")
        since = int(request.query.get("updated_since", "0"))
        status = request.query.get("status")
        found = sorted(
            (
                t
                for t in self.tickets
                if t["updated_at"] >= since and (status is None or t["status"] == status)
            ),
            key=lambda t: (t["updated_at"], t["id"]),
        )
        start = int(request.query.get("page_token", "0"))
        page = found[start : start + limit]
        following = str(start + limit) if start + limit < len(found) else None
        if self.stuck_token is not None:
            following = self.stuck_token
        return web.json_response({"tickets": page, "next_page_token": following})

    async def get_ticket(self, request: web.Request) -> web.Response:
        ticket = self.find(request.match_info["id"])
        if ticket is None:
            return self.error(404, "not_found", f"ticket {request.match_info['id']} does not exist")
        return web.json_response(ticket)

    async def create_ticket(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("Idempotency-Key")
        if not key:
            return self.error(400, "missing_key", "Idempotency-Key is required")
        if key in self.first_by_key:
            first_body, ticket = self.first_by_key[key]
            if first_body != body:
                return self.error(
                    422, "idempotency_key_reused", f"key {key} was used for another ticket"
                )
            return web.json_response(ticket, status=201)
        if set(body) != {"subject", "body", "requester_email", "priority"}:
            return self.error(422, "invalid_body", f"unexpected fields {sorted(body)}")
        ticket = self.add(body["subject"], 1_700_000_500 + len(self.tickets))
        ticket.update(body)
        self.first_by_key[key] = (body, ticket)
        return web.json_response(ticket, status=201)

    async def set_status(self, request: web.Request) -> web.Response:
        ticket = self.find(request.match_info["id"])
        if ticket is None:
            return self.error(404, "not_found", f"ticket {request.match_info['id']} does not exist")
        ticket["status"] = (await request.json())["status"]
        ticket["updated_at"] += 1
        return web.json_response(ticket)

    def gets(self) -> list[str]:
        return [path for method, path, _ in self.requests if method == "GET"]


@pytest.fixture
def api() -> Iterator[tuple[HelpdeskApi, dict[str, Any]]]:
    fake = HelpdeskApi()
    with serve_in_thread(fake.app()) as server:
        yield fake, {"base_url": server.url + "/api/v2", "api_key": KEY}


# -- the page itself -----------------------------------------------------------------------


def test_the_page_marks_the_worked_example_and_links_its_neighbours() -> None:
    text = DOC.read_text()
    assert len(blocks("helpdesk")) >= 3
    assert len(blocks("helpdesk-test")) == 1
    for link in ("connectors-reference.md", "scaffolding.md", "guarantees.md"):
        assert f"({link})" in text, link
        assert (DOC.parent / link).exists(), link
    assert '[project.entry-points."flowkit.connectors"]' in text
    for kind in ErrorKind:  # the error table names every kind
        assert f"| `{kind.name}` |" in text, kind


def test_the_pages_own_test_passes(package_dir: Path, tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_helpdesk.py").write_text(blocks("helpdesk-test")[0] + "\n")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\naddopts = -p no:cacheprovider\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    env = {**os.environ, "PYTHONPATH": str(package_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b4 passed\b", done.stdout), done.stdout


def test_installed_as_a_plugin_it_is_listed_as_the_page_shows(package_dir: Path) -> None:
    """A dist-info with the page's entry point (what `pip install` writes) on PYTHONPATH."""
    info = package_dir / "flowkit_helpdesk-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: flowkit-helpdesk\nVersion: 0.1.0\n"
    )
    entry = re.search(r'\[project\.entry-points\."flowkit\.connectors"\]\n(.+)\n', DOC.read_text())
    assert entry is not None and entry.group(1) == 'helpdesk = "flowkit_helpdesk:connector"'
    (info / "entry_points.txt").write_text(
        "[flowkit.connectors]\nhelpdesk = flowkit_helpdesk:connector\n"
    )
    env = {**os.environ, "PYTHONPATH": str(package_dir), "COLUMNS": "200", "NO_COLOR": "1"}

    def flowkit(*args: str, code: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "flowkit", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout + done.stderr

    listed = [line for line in flowkit("connectors").splitlines() if line.startswith("helpdesk")]
    console = DOC.read_text().split("$ flowkit connectors\n", 1)[1].split("```", 1)[0]
    assert listed == [line for line in console.splitlines() if line.startswith("helpdesk")]
    settings = flowkit("connectors", "show", "helpdesk")
    assert re.search(r"api_key\s+str \(secret\)", settings), settings
    assert "flowkit-helpdesk 0.1.0" in settings

    recipe = re.search(
        r"<!-- example: helpdesk-recipe -->\n```yaml\n(.*?)```", DOC.read_text(), re.S
    )
    assert recipe is not None
    path = package_dir / "failed-payment-tickets.yaml"
    path.write_text(recipe.group(1))
    flowkit("validate", str(path))  # exit 0: the inputs match the action's models
    path.write_text(recipe.group(1).replace("priority: high", "priority: hihg"))
    assert "steps[0].with.priority: Input should be" in flowkit("validate", str(path), code=1)
    path.write_text(recipe.group(1).replace("priority: high", "colour: red"))
    assert "colour" in flowkit("validate", str(path), code=1)


def test_the_example_satisfies_the_contract(helpdesk: ModuleType) -> None:
    connector = helpdesk.connector
    assert check_connector(connector) == []
    assert connector.api_version == API_VERSION
    declared = {
        name: (action.effect, action.idempotency) for name, action in connector.actions.items()
    }
    assert declared == {
        "list_tickets": (Effect.READ, Idempotency.NONE),
        "get_ticket": (Effect.READ, Idempotency.NONE),
        "create_ticket": (Effect.WRITE, Idempotency.HEADER),
        "set_status": (Effect.WRITE, Idempotency.NATURAL),
    }
    assert all(action.retry_safe for action in connector.actions.values())
    secret = connector.settings.model_fields["api_key"].annotation
    assert secret.__name__ == "SecretStr"


# -- the example against the fake ----------------------------------------------------------


async def test_list_tickets_follows_two_pages_and_returns_the_cursor(
    helpdesk: ModuleType, api: tuple[HelpdeskApi, dict[str, Any]]
) -> None:
    fake, settings = api
    fake.add("late", 1_700_000_030)
    fake.add("early", 1_700_000_010)
    fake.add("middle", 1_700_000_020, status="pending")
    out = await call_action(helpdesk.connector, "list_tickets", {"limit": 2}, settings=settings)
    assert [t.subject for t in out.items] == ["early", "middle", "late"]
    assert out.cursor == 1_700_000_030
    assert out.items[0].channel == "email"  # extra API fields are kept
    pages = fake.gets()
    assert pages == ["/api/v2/tickets?limit=2", "/api/v2/tickets?limit=2&page_token=2"]

    later = await call_action(
        helpdesk.connector, "list_tickets", {"cursor": 1_700_000_020}, settings=settings
    )
    assert [t.subject for t in later.items] == ["middle", "late"]  # the boundary is re-read
    assert "updated_since=1700000020" in fake.gets()[-1]

    pending = await call_action(
        helpdesk.connector, "list_tickets", {"status": "pending"}, settings=settings
    )
    assert [t.subject for t in pending.items] == ["middle"]

    nothing = await call_action(
        helpdesk.connector, "list_tickets", {"cursor": 1_700_000_031}, settings=settings
    )
    assert nothing.items == [] and nothing.cursor == 1_700_000_031


async def test_a_page_token_that_does_not_advance_stops_the_trigger(
    helpdesk: ModuleType, api: tuple[HelpdeskApi, dict[str, Any]]
) -> None:
    fake, settings = api
    fake.add("a", 1_700_000_001)
    fake.stuck_token = "1"
    with pytest.raises(ConnectorError) as stuck:
        await call_action(helpdesk.connector, "list_tickets", {"limit": 1}, settings=settings)
    assert stuck.value.kind is ErrorKind.PERMANENT
    assert "did not advance" in str(stuck.value)
    assert len(fake.gets()) == 2


async def test_create_ticket_sends_the_key_and_creates_one_ticket_per_key(
    helpdesk: ModuleType, api: tuple[HelpdeskApi, dict[str, Any]]
) -> None:
    fake, settings = api
    data = {"subject": "Refund for #1001", "requester_email": "ann@example.com"}
    first = await call_action(
        helpdesk.connector, "create_ticket", data, settings=settings, key="fk-abc"
    )
    again = await call_action(
        helpdesk.connector, "create_ticket", data, settings=settings, key="fk-abc"
    )
    assert first.id == again.id and first.subject == "Refund for #1001"
    assert len(fake.tickets) == 1
    posts = [headers for method, _, headers in fake.requests if method == "POST"]
    assert [h.get("Idempotency-Key") for h in posts] == ["fk-abc", "fk-abc"]

    other = await call_action(
        helpdesk.connector, "create_ticket", data, settings=settings, key="fk-def"
    )
    assert other.id != first.id and len(fake.tickets) == 2

    with pytest.raises(ConnectorError) as reused:
        await call_action(
            helpdesk.connector,
            "create_ticket",
            {**data, "priority": "urgent"},
            settings=settings,
            key="fk-abc",
        )
    assert reused.value.kind is ErrorKind.CONFLICT and reused.value.status == 422
    assert "key fk-abc was used for another ticket [idempotency_key_reused]" in str(reused.value)


async def test_429_is_rate_limited_with_retry_after_and_404_keeps_the_api_message(
    helpdesk: ModuleType, api: tuple[HelpdeskApi, dict[str, Any]]
) -> None:
    fake, settings = api
    fake.queued.append(
        HelpdeskApi.error(429, "rate_limited", "too many requests", **{"Retry-After": "5"})
    )
    with pytest.raises(ConnectorError) as limited:
        await call_action(helpdesk.connector, "list_tickets", {}, settings=settings)
    assert limited.value.kind is ErrorKind.RATE_LIMITED
    assert limited.value.retry_after == 5.0 and limited.value.status == 429
    assert "too many requests [rate_limited]" in str(limited.value)

    with pytest.raises(ConnectorError) as missing:
        await call_action(helpdesk.connector, "get_ticket", {"id": 99}, settings=settings)
    assert missing.value.kind is ErrorKind.NOT_FOUND and not missing.value.maybe_sent
    assert str(missing.value) == (
        "HTTP 404 from GET /api/v2/tickets/99: ticket 99 does not exist [not_found]"
    )

    fake.queued.append(web.Response(status=503, text="<html>upstream gone</html>"))
    with pytest.raises(ConnectorError) as down:
        await call_action(helpdesk.connector, "get_ticket", {"id": 1}, settings=settings)
    assert down.value.kind is ErrorKind.TRANSIENT and "upstream gone" in str(down.value)


async def test_the_api_key_is_registered_as_a_secret_and_never_shown(
    helpdesk: ModuleType, api: tuple[HelpdeskApi, dict[str, Any]]
) -> None:
    _fake, settings = api
    registered: list[str] = []
    lines: list[str] = []
    runtime = Runtime("support", MemoryKV(), registered.append, lines.append)
    config = helpdesk.connector.settings.model_validate({**settings, "api_key": "wrong-key-999"})
    assert "wrong-key-999" not in repr(config)
    session = await helpdesk.connector.open(config, runtime)
    try:
        action = helpdesk.connector.actions["list_tickets"]
        with pytest.raises(ConnectorError) as denied:
            await action.run(session, action.Input(), CallContext("fk-x"))
    finally:
        await helpdesk.connector.close(session)
    assert denied.value.kind is ErrorKind.AUTH
    assert "invalid API key [unauthorized]" in str(denied.value)
    assert "wrong-key-999" in registered
    assert lines and lines[0].startswith("support: GET /api/v2/tickets -> 401")


async def test_set_status_plans_its_change_for_a_dry_run_and_then_applies_it(
    helpdesk: ModuleType, api: tuple[HelpdeskApi, dict[str, Any]]
) -> None:
    fake, settings = api
    ticket = fake.add("Broken mug", 1_700_000_100)
    action = helpdesk.connector.actions["set_status"]
    config = helpdesk.connector.settings.model_validate(settings)
    session = await helpdesk.connector.open(config, Runtime("helpdesk", MemoryKV()))
    try:
        change = action.Input(id=ticket["id"], status="solved")
        plan = await action.plan(session, change, CallContext("fk-plan"))
        assert plan == [Change(f"ticket {ticket['id']}", "status", "open", "solved")]
        assert plan[0].format() == f"ticket {ticket['id']} status open -> solved"
        assert ticket["status"] == "open"  # planning only read
        assert [m for m, _, _ in fake.requests] == ["GET"]

        done = await action.run(session, change, CallContext("fk-plan"))
        assert done.status == "solved" and ticket["status"] == "solved"
        assert await action.plan(session, change, CallContext("fk-plan")) == []
    finally:
        await helpdesk.connector.close(session)


def test_a_dry_run_simulates_create_ticket_from_its_output_model(helpdesk: ModuleType) -> None:
    action = helpdesk.connector.actions["create_ticket"]
    data = action.Input(subject="x", requester_email="ann@example.com")
    simulated = action.simulate(data, CallContext("fk-0123456789abcdef"))
    assert isinstance(simulated, helpdesk.Ticket)
    assert simulated.id == 0 and simulated.updated_at == 0
    assert simulated.subject == "dryrun-89abcdef" and simulated.priority == "normal"


def test_inputs_reject_unknown_and_invalid_fields(helpdesk: ModuleType) -> None:
    action = helpdesk.connector.actions["create_ticket"]
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        action.Input(subject="x", requester_email="ann@example.com", colour="red")
    listing = helpdesk.connector.actions["list_tickets"]
    with pytest.raises(ValueError, match="less than or equal to 100"):
        listing.Input(limit=500)
