"""Fixtures for the HTTP layer and the http, stripe and slack connector tests."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from flowkit.connectors.base import Runtime
from flowkit.sandbox.server import ServerHandle, free_port, serve_in_thread


class DictKV:
    """A KeyValueStore backed by a dict (what the state store's kv table does durably)."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = dict(initial or {})
        self.writes: list[tuple[str, str]] = []

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value
        self.writes.append((key, value))


class RecordingRuntime(Runtime):
    """A Runtime that remembers registered secrets and debug lines."""

    def __init__(self, kv: DictKV | None = None) -> None:
        self.secrets: list[str] = []
        self.lines: list[str] = []
        super().__init__(
            connection="test",
            kv=kv or DictKV(),
            register_secret=self.secrets.append,
            debug=self.lines.append,
        )


@pytest.fixture
def kv() -> DictKV:
    return DictKV()


@pytest.fixture
def runtime(kv: DictKV) -> RecordingRuntime:
    return RecordingRuntime(kv)


@pytest.fixture
def serve() -> Iterator[object]:
    """`serve(app)` starts an aiohttp app on 127.0.0.1 for the test and stops it after."""
    handles: list[ServerHandle] = []

    def start(app: web.Application) -> ServerHandle:
        handle = serve_in_thread(app)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def make_kv() -> type[DictKV]:
    """The dict-backed KeyValueStore class, for tests that need several or pre-filled ones."""
    return DictKV


# localstripe ---------------------------------------------------------------------------------

LOCALSTRIPE_KEY = "sk_test_flowkit_localstripe"


def _localstripe_ready(url: str) -> bool:
    request = urllib.request.Request(
        f"{url}/v1/customers?limit=1",
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{LOCALSTRIPE_KEY}:".encode()).decode()
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[str]:
    """A localstripe process on 127.0.0.1 (in-memory store) for the whole session."""
    port = free_port()
    launcher = Path(__file__).with_name("localstripe_launcher.py")
    proc = subprocess.Popen(
        [sys.executable, str(launcher), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while not _localstripe_ready(url):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"localstripe exited at start: {err[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("localstripe did not answer within 20 s")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture
def localstripe(localstripe_server: str) -> str:
    """The localstripe URL, with every object deleted before the test."""
    request = urllib.request.Request(f"{localstripe_server}/_config/data", method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    return localstripe_server


class ConnectProxy:
    """An HTTP proxy on 127.0.0.1: CONNECT gets a tunnel to 127.0.0.1 (the port asked for), and
    an absolute-form request is forwarded to its port there, with what follows on the same
    connection; `heads` keeps every request head it received."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.port = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        method, target = head.split(b"\r\n")[0].split()[:2]
        if method == b"CONNECT":  # CONNECT host:port HTTP/1.1: a tunnel for https
            port = int(target.rsplit(b":", 1)[1])
        else:  # GET http://host:port/path HTTP/1.1: forwarded as it is (RFC 9112 3.2.2)
            port = urlsplit(target.decode()).port or 80
        upstream = await asyncio.open_connection("127.0.0.1", port)
        if method == b"CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            upstream[1].write(head)
        await asyncio.gather(self._pipe(reader, upstream[1]), self._pipe(upstream[0], writer))


@pytest.fixture
async def connect_proxy() -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy()
    server = await asyncio.start_server(proxy.tunnel, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
