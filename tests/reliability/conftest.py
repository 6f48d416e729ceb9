"""The fake world and the process harness the reliability tests share.

`Shop` is one aiohttp application (served once per session on 127.0.0.1) that hosts many
independent `World`s under `/w/<name>/`, so every test case gets a fresh shop without paying
for a new server. A world is a tiny order/payment API that records everything it sees:

  GET  /w/<name>/orders?after=<id>&limit=<n>   cursor-aware list: {data, next_cursor}
  POST /w/<name>/charges                       Stripe idempotency semantics (below)
  PUT  /w/<name>/orders/<id>/status            naturally idempotent (replace the status)
  POST /w/<name>/notes                         no idempotency: every request is a new note
  POST /w/<name>/echo                          answers the JSON body back (secrets test)
  GET  /w/<name>/whoami                        answers the Authorization header back
  POST /w/<name>/reject                        400 whose message quotes the body (secrets test)

Charges follow https://docs.stripe.com/api/idempotent_requests: the first request with an
`Idempotency-Key` applies the effect and its answer is stored; a repeat with the same key and
the same parameters gets the stored answer again (`Idempotent-Replayed: true`); a repeat with
other parameters gets 400 `idempotency_error` (counted: it would mean flowkit changed a request
under one key). Applying is atomic here, so Stripe's 409 for a concurrent repeat cannot
occur. Every request and every APPLIED effect is recorded with its key and body: that record,
not flowkit's own journal, is what the crash checker trusts.

Fault knobs per world: `latency` (seconds before each answer), `kill_after_write` (the k-th
write request is applied, then the flowkit process `pid` gets SIGKILL before the answer
leaves, the "applied but never acknowledged" case of Jepsen's indeterminate `:info`), and a
gate that holds one process's requests until the test opens it (a run that stays busy for as
long as the test needs, whatever the machine's load).

`Flowkit` starts the real `flowkit` console script as a subprocess.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flowkit.sandbox.server import ServerHandle, serve_in_thread

RECIPE_NAME = "charge-orders"


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str  # relative to the world, e.g. "charges"
    key: str | None  # Idempotency-Key header
    body: Any
    tag: str | None  # X-Run-Tag header: which process sent it
    auth: str | None  # Authorization header
    at: float
    answer: int = 0  # HTTP status answered (0 while in flight)


@dataclass
class Applied:
    """An effect that really happened."""

    kind: str  # "charge" | "status" | "note"
    order: str
    key: str | None
    body: Any
    ref: str  # charge id, note id, or the order id for a status


def _fingerprint(path: str, body: Any) -> str:
    raw = json.dumps([path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def _process_gone(pid: int) -> bool:
    """True once `pid` is dead: reaped (no /proc entry) or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class World:
    """One isolated shop: its orders, its ledgers and its fault knobs."""

    def __init__(self, name: str, url: str, orders: int) -> None:
        self.name = name
        self.url = url  # base URL with a trailing slash
        self.orders: list[dict[str, Any]] = [
            {"id": f"ord_{i:03d}", "amount": 1000 + 7 * i} for i in range(orders)
        ]
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.applied: list[Applied] = []
        self.status: dict[str, Any] = {}
        self.stored: dict[str, tuple[str, int, dict[str, Any]]] = {}  # key -> (fp, status, body)
        self.idempotency_errors = 0
        self.latency = 0.0
        self.kill_after_write: int | None = None
        self.pid: int | None = None
        self.writes_seen = 0
        self.kills = 0
        self.first_request = threading.Event()
        self.active = 0  # requests being handled right now
        self.max_active = 0
        self.gate_tag: str | None = None  # requests from this process wait for `gate_open`
        self.gate_open = threading.Event()
        self.gate_reached = threading.Event()  # such a request is waiting at the gate

    # views for the checker --------------------------------------------------------------
    def writes(self, tag: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method != "GET" and (tag is None or r.tag == tag)]

    def sent_by(self, tag: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.tag == tag]

    def forget_keys(self) -> None:
        """What Stripe does to keys older than 24 hours: prune them."""
        with self.lock:
            self.stored.clear()

    def charges_per_order(self) -> dict[str, int]:
        with self.lock:
            counts = {o["id"]: 0 for o in self.orders}
            for effect in self.applied:
                if effect.kind == "charge":
                    counts[effect.order] = counts.get(effect.order, 0) + 1
            return counts

    def effects(self, kind: str) -> list[Applied]:
        with self.lock:
            return [e for e in self.applied if e.kind == kind]

    def arm(self, pid: int, kill_after_write: int | None) -> None:
        with self.lock:
            self.pid = pid
            self.kill_after_write = kill_after_write
            self.writes_seen = 0

    # helpers for handlers ---------------------------------------------------------------
    def record(self, request: web.Request, path: str, body: Any) -> Request:
        entry = Request(
            request.method,
            path,
            request.headers.get("Idempotency-Key"),
            body,
            request.headers.get("X-Run-Tag"),
            request.headers.get("Authorization"),
            time.time(),
        )
        with self.lock:
            self.requests.append(entry)
        self.first_request.set()
        return entry

    async def after_write(self) -> None:
        """Count a write; SIGKILL the client if this is the armed one, and wait until it is
        dead so the answer can never reach it."""
        with self.lock:
            self.writes_seen += 1
            fire = self.kill_after_write is not None and self.writes_seen == self.kill_after_write
            pid = self.pid
            if fire:
                self.kill_after_write = None
        if fire and pid is not None:
            self.kills += 1
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 5
            while not _process_gone(pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.002)


def _answer(entry: Request, status: int, body: dict[str, Any], **headers: str) -> web.Response:
    entry.answer = status
    return web.json_response(body, status=status, headers=headers or None)


class Shop:
    """The session's server: routes every request to its world."""

    def __init__(self) -> None:
        self.worlds: dict[str, World] = {}
        self.handle: ServerHandle | None = None

    def world(self, name: str, orders: int = 8) -> World:
        assert self.handle is not None and name not in self.worlds
        world = World(name, f"{self.handle.url}/w/{name}/", orders)
        self.worlds[name] = world
        return world

    @web.middleware
    async def count_active(self, request: web.Request, handler: Any) -> web.StreamResponse:
        world = self.worlds.get(request.match_info.get("world", ""))
        if world is None:
            return await handler(request)  # type: ignore[no-any-return]
        with world.lock:
            world.active += 1
            world.max_active = max(world.max_active, world.active)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except ConnectionResetError:
            # the client was killed while sending its body: nothing was applied, and nobody
            # is left to read an answer
            return web.Response(status=499)
        finally:
            with world.lock:
                world.active -= 1

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.count_active])
        app.router.add_get("/w/{world}/orders", self.list_orders)
        app.router.add_post("/w/{world}/charges", self.create_charge)
        app.router.add_put("/w/{world}/orders/{order}/status", self.put_status)
        app.router.add_post("/w/{world}/notes", self.create_note)
        app.router.add_post("/w/{world}/echo", self.echo)
        app.router.add_get("/w/{world}/whoami", self.whoami)
        app.router.add_post("/w/{world}/reject", self.reject)
        return app

    async def _world(self, request: web.Request) -> World:
        world = self.worlds.get(request.match_info["world"])
        if world is None:
            raise web.HTTPNotFound(text="no such world")
        if world.gate_tag is not None and request.headers.get("X-Run-Tag") == world.gate_tag:
            world.gate_reached.set()
            while not world.gate_open.is_set():
                await asyncio.sleep(0.01)
        if world.latency:
            await asyncio.sleep(world.latency)
        return world

    @staticmethod
    async def _json(request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        return await request.json()

    async def list_orders(self, request: web.Request) -> web.Response:
        world = await self._world(request)
        entry = world.record(request, "orders", dict(request.query))
        after = request.query.get("after")
        limit = int(request.query.get("limit", "100"))
        rest = [o for o in world.orders if after is None or o["id"] > after]
        page = rest[:limit]
        cursor = page[-1]["id"] if page else None
        return _answer(entry, 200, {"data": page, "next_cursor": cursor})

    async def create_charge(self, request: web.Request) -> web.Response:
        world = await self._world(request)
        body = await self._json(request)
        entry = world.record(request, "charges", body)
        key = entry.key
        if not isinstance(body, dict) or "order" not in body or "amount" not in body:
            return _answer(
                entry,
                400,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "order and amount are required",
                    }
                },
            )
        fp = _fingerprint("charges", body)
        with world.lock:
            stored = world.stored.get(key) if key is not None else None
            if stored is not None and stored[0] != fp:
                world.idempotency_errors += 1
                return _answer(
                    entry,
                    400,
                    {
                        "error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with "
                            "the same parameters they were first used with.",
                        }
                    },
                )
            if stored is None:
                charge_id = f"ch_{len([a for a in world.applied if a.kind == 'charge']) + 1:04d}"
                answer = {
                    "id": charge_id,
                    "object": "charge",
                    "order": body["order"],
                    "amount": body["amount"],
                    "status": "succeeded",
                    "metadata": body.get("metadata", {}),
                }
                world.applied.append(Applied("charge", str(body["order"]), key, body, charge_id))
                if key is not None:
                    world.stored[key] = (fp, 200, answer)
                replay = False
            else:
                answer = stored[2]
                replay = True
        await world.after_write()
        if replay:
            return _answer(entry, 200, answer, **{"Idempotent-Replayed": "true"})
        return _answer(entry, 200, answer)

    async def put_status(self, request: web.Request) -> web.Response:
        world = await self._world(request)
        order = request.match_info["order"]
        body = await self._json(request)
        entry = world.record(request, f"orders/{order}/status", body)
        if order not in {o["id"] for o in world.orders}:
            return _answer(entry, 404, {"error": {"message": f"no order {order}"}})
        with world.lock:
            world.status[order] = body
            world.applied.append(Applied("status", order, entry.key, body, order))
        await world.after_write()
        return _answer(entry, 200, {"order": order, **(body or {})})

    async def create_note(self, request: web.Request) -> web.Response:
        world = await self._world(request)
        body = await self._json(request)
        entry = world.record(request, "notes", body)
        with world.lock:
            note_id = f"note_{len([a for a in world.applied if a.kind == 'note']) + 1:04d}"
            order = str((body or {}).get("order"))
            world.applied.append(Applied("note", order, entry.key, body, note_id))
        await world.after_write()
        return _answer(entry, 201, {"id": note_id, **(body or {})})

    async def echo(self, request: web.Request) -> web.Response:
        world = await self._world(request)
        body = await self._json(request)
        entry = world.record(request, "echo", body)
        await world.after_write()
        return _answer(
            entry, 200, {"echo": body, "auth_seen": request.headers.get("Authorization")}
        )

    async def whoami(self, request: web.Request) -> web.Response:
        world = await self._world(request)
        entry = world.record(request, "whoami", None)
        return _answer(entry, 200, {"auth_seen": request.headers.get("Authorization")})

    async def reject(self, request: web.Request) -> web.Response:
        world = await self._world(request)
        body = await self._json(request)
        entry = world.record(request, "reject", body)
        await world.after_write()
        return _answer(
            entry,
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": f"cannot accept note {json.dumps(body)} with "
                    f"{request.headers.get('Authorization')}",
                }
            },
        )


@pytest.fixture(scope="session")
def shop() -> Iterator[Shop]:
    server = Shop()
    server.handle = serve_in_thread(server.app())
    try:
        yield server
    finally:
        server.handle.stop()


# the recipe ----------------------------------------------------------------------------------


def charge_recipe(world: World, *, page: int = 4, concurrency: int = 4) -> str:
    """Trigger: the world's orders (cursor-aware, paginated); step 1: an idempotent charge;
    step 2: PUT the order's status with the charge id from step 1's output."""
    return textwrap.dedent(f"""\
        flowkit: 1
        name: {RECIPE_NAME}
        concurrency: {concurrency}
        connections:
          shop:
            connector: http
            with:
              base_url: "{world.url}"
              idempotency_header: Idempotency-Key
              headers: {{X-Run-Tag: "${{{{ env.RUN_TAG }}}}"}}
              timeout: 10
        trigger:
          use: http.list
          connection: shop
          with:
            path: orders
            cursor: ${{{{ cursor }}}}
            cursor_param: after
            items_field: data
            next_cursor_field: next_cursor
            query: {{limit: {page}}}
          key: ${{{{ item.id }}}}
          cursor: ${{{{ output.cursor }}}}
        steps:
          - id: charge
            use: http.post_idempotent
            connection: shop
            with:
              path: charges
              json:
                order: ${{{{ item.id }}}}
                amount: ${{{{ item.amount }}}}
                currency: eur
          - id: mark_paid
            use: http.put
            connection: shop
            with:
              path: orders/${{{{ item.id }}}}/status
              json:
                status: paid
                charge: ${{{{ steps.charge.output.body.id }}}}
        """)


# the process harness -------------------------------------------------------------------------


FLOWKIT = Path(sys.executable).parent / "flowkit"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Flowkit:
    """Runs the real `flowkit` console script with a controlled environment."""

    env: dict[str, str] = field(default_factory=dict)

    def environment(self, tag: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWKIT_CRASH")}
        env.update(self.env)
        env["RUN_TAG"] = tag
        env.update(extra or {})
        return env

    def start(
        self,
        args: list[str],
        *,
        tag: str,
        extra: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(FLOWKIT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment(tag, extra),
            cwd=cwd,
        )

    def run(
        self,
        args: list[str],
        *,
        tag: str = "cli",
        extra: Mapping[str, str] | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
    ) -> Result:
        started = time.monotonic()
        proc = self.start(args, tag=tag, extra=extra, cwd=cwd)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(
                f"flowkit {' '.join(args)} did not finish in {timeout}s:\n{err}"
            ) from None
        return Result(proc.returncode, out, err, time.monotonic() - started)


@pytest.fixture
def flowkit() -> Flowkit:
    return Flowkit()


def integrity(path: Path) -> str:
    """`PRAGMA integrity_check` of a state database, read with a separate connection."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return ", ".join(str(r[0]) for r in rows)


def store_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()
