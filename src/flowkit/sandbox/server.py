"""Run aiohttp applications on 127.0.0.1 in a background thread (tests and `flowkit sandbox`)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerHandle:
    """A running server: its base URL and a way to stop it."""

    url: str
    port: int
    _stop: Callable[[], None] = field(repr=False)

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve_in_thread(app: web.Application, port: int | None = None) -> ServerHandle:
    """Start `app` on 127.0.0.1:`port` (a free one if None) in a daemon thread; return at once
    when it accepts connections."""
    chosen = port or free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []
    runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", chosen, reuse_address=True)
        await site.start()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            loop.run_until_complete(runner.cleanup())
            loop.close()
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, name=f"sandbox-{chosen}", daemon=True)
    thread.start()
    ready.wait(timeout=30)
    if failure:
        raise failure[0]

    def stop() -> None:
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    return ServerHandle(url=f"http://127.0.0.1:{chosen}", port=chosen, _stop=stop)
