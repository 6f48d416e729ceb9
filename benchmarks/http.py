# ruff: noqa: E402
"""HTTP client throughput: flowkit's HttpClient against the floor and a raw asyncio client.

    .venv/bin/python benchmarks/http.py [--requests 1000] [--concurrency 50] [--latency 0.05]
                                        [--repeat 5] [--skip-httpx]

A local aiohttp server runs in a separate process (its own interpreter, so it shares neither
the GIL nor the event loop with the clients) and answers each JSON POST after the latency
given in the query string. Each client sends `--requests` POSTs from `--concurrency` workers
(so that many are in flight) over keep-alive connections:

  recipe    a whole flowkit run (in-process): 1,000 items, each one journaled idempotent POST;
            the connection allows `--concurrency` requests in flight, the recipe twice as many
            items (so that items waiting on a journal commit do not leave the pipe empty)
  flowkit   HttpClient with its Http11Transport (max_connections = concurrency)
  raw       HTTP/1.1 written by hand on asyncio streams, one connection per worker
  aiohttp   plain aiohttp ClientSession (connector limit = concurrency), for reference
  httpx     httpx.AsyncClient with its default transport (httpcore), for reference

With latency L the floor is requests * L / concurrency. Targets: flowkit <= 1.3x the floor
with 50 ms latency, <= 3x the raw client with no latency. Each timing is the best of
`--repeat` runs after a warm-up round. Without latency, a client's ratio to the raw client is
the median over the rounds of its time over the raw client's in the same round (they run
seconds apart, so a change in this machine's speed between rounds cancels out; the best of
each alone may come from rounds minutes apart); the per-round ratios and the best-of ratio
are printed too.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's directory comes first on sys.path, and its name would shadow
# the standard library's `http` package that aiohttp and httpx import: drop it first.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _HERE]

import argparse
import asyncio
import json
import platform
import shlex
import socket
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

BODY = {"sku": "SKU-0042", "stock": 7, "note": "benchmark"}


# server (child process) ------------------------------------------------------------------------


def serve(port: int) -> None:
    from aiohttp import web

    async def work(request: web.Request) -> web.Response:
        payload = await request.json()
        latency = float(request.query.get("latency", "0"))
        if latency:
            await asyncio.sleep(latency)
        return web.json_response({"ok": True, "echo": payload["sku"]})

    app = web.Application()
    app.router.add_post("/work", work)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("benchmark server failed to start") from None
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("benchmark server did not start within 20 s")


# clients -----------------------------------------------------------------------------------------

Runner = Callable[[int, int, float], Awaitable[None]]


async def run_workers(concurrency: int, total: int, one: Callable[[int], Awaitable[None]]) -> None:
    counter = iter(range(total))

    async def worker(index: int) -> None:
        for _ in counter:
            await one(index)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


def flowkit_runner(port: int) -> Runner:
    async def run(total: int, concurrency: int, latency: float) -> None:
        from flowkit.connectors.http_client import HttpClient

        async with HttpClient(f"http://127.0.0.1:{port}", max_connections=concurrency) as http:
            params = {"latency": str(latency)}

            async def one(_index: int) -> None:
                data = await http.post_json("/work", params=params, json=BODY)
                assert data["ok"] is True

            await run_workers(concurrency, total, one)

    return run


RECIPE = """\
flowkit: 1
name: http-bench
concurrency: {items_in_flight}
connections:
  api:
    connector: http
    concurrency: {concurrency}
    with: {{base_url: "http://127.0.0.1:{port}", max_connections: {concurrency},
           idempotency_header: Idempotency-Key}}
trigger:
  use: noop.read
  with: {{items: {total}}}
  key: ${{{{ item.id }}}}
steps:
  - id: post
    use: http.post_idempotent
    connection: api
    with:
      path: /work
      query: {{latency: "{latency}"}}
      json: {{sku: "${{{{ item.id }}}}", stock: "${{{{ item.n }}}}", note: benchmark}}
"""


def recipe_runner(port: int) -> Runner:
    """A whole `flowkit run` in-process: a recipe whose items each POST once, journaled in a
    fresh SQLite state file (WAL, synchronous=FULL) like a real run."""

    async def run(total: int, concurrency: int, latency: float) -> None:
        import tempfile

        from flowkit.engine.runner import RunOptions, run_recipe
        from flowkit.recipe.loader import load_recipe
        from flowkit.state.sqlite import SqliteStateStore

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.yaml"
            # twice as many items as requests in flight: while some items wait for their
            # journal commit, others keep the connection's `concurrency` requests in flight
            text = RECIPE.format(
                port=port,
                total=total,
                concurrency=concurrency,
                latency=latency,
                items_in_flight=2 * concurrency,
            )
            path.write_text(text)
            loaded = load_recipe(path)
            store = SqliteStateStore(Path(tmp) / "state.db")
            await store.open()
            try:
                summary = await run_recipe(loaded, store, RunOptions())
            finally:
                await store.close()
            assert summary.done == total, summary.as_dict()

    return run


def httpx_runner(port: int) -> Runner:
    async def run(total: int, concurrency: int, latency: float) -> None:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as c:
            params = {"latency": str(latency)}

            async def one(_index: int) -> None:
                response = await c.post("/work", params=params, json=BODY)
                assert response.json()["ok"] is True

            await run_workers(concurrency, total, one)

    return run


def aiohttp_runner(port: int) -> Runner:
    """Plain aiohttp, for reference: the library under flowkit's transport."""

    async def run(total: int, concurrency: int, latency: float) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"http://127.0.0.1:{port}/work"
            params = {"latency": str(latency)}

            async def one(_index: int) -> None:
                async with session.post(url, params=params, json=BODY) as response:
                    data = await response.json()
                    assert data["ok"] is True

            await run_workers(concurrency, total, one)

    return run


def raw_runner(port: int) -> Runner:
    """Hand-written HTTP/1.1 keep-alive client: the cost of the bytes alone."""

    async def run(total: int, concurrency: int, latency: float) -> None:
        body = json.dumps(BODY).encode()
        head = (
            f"POST /work?latency={latency} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        request = head + body
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]

        async def one(index: int) -> None:
            reader, writer = conns[index]
            writer.write(request)
            status = await reader.readline()
            if not status.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer {status!r}")
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            data = json.loads(await reader.readexactly(length))
            assert data["ok"] is True

        try:
            await run_workers(concurrency, total, one)
        finally:
            for _reader, writer in conns:
                writer.close()

    return run


ROUNDS: dict[float, list[dict[str, float]]] = {}  # latency -> wall time of each runner per round


def measure(
    runners: dict[str, Runner], total: int, concurrency: int, latency: float, repeat: int
) -> dict[str, tuple[float, float]]:
    """Best wall time and best client CPU time of each runner. Runs are interleaved so that
    load from other processes on the machine hits every client alike; each round's wall
    times are kept in ROUNDS for the paired ratios."""
    for runner in runners.values():
        asyncio.run(runner(concurrency, concurrency, latency))  # warm-up: imports, connects
    best = {name: (float("inf"), float("inf")) for name in runners}
    rounds = ROUNDS.setdefault(latency, [])
    for _ in range(repeat):
        walls: dict[str, float] = {}
        for name, runner in runners.items():
            started, cpu = time.perf_counter(), time.process_time()
            asyncio.run(runner(total, concurrency, latency))
            wall, used = time.perf_counter() - started, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], used))
            walls[name] = wall
        rounds.append(walls)
    return best


def _ratios(latency: float, name: str, base: str) -> list[float]:
    return [r[name] / r[base] for r in ROUNDS.get(latency, []) if name in r and base in r]


def median_ratio(latency: float, name: str, base: str) -> float:
    """The median over the rounds of `name`'s time over `base`'s in the same round. The two
    run seconds apart, so a change in this machine's speed between rounds (up to 2x) cancels
    out; the best of each alone may come from different rounds."""
    return statistics.median(_ratios(latency, name, base))


def paired(latency: float, name: str, base: str) -> str:
    return "per round " + " ".join(f"{x:.2f}" for x in _ratios(latency, name, base))


# report ------------------------------------------------------------------------------------------


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp
    import httpx

    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}; httpx {httpx.__version__}, "
        f"aiohttp {aiohttp.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-httpx", action="store_true", help="skip the slow reference run")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    n, c, lat = args.requests, args.concurrency, args.latency
    print("command: " + shlex.join([sys.executable, *sys.argv]))
    print("machine: " + machine_info())
    print(f"{n} JSON POSTs, {c} in flight, server in a separate process")
    print(f"load average before the run: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    proc, port = start_server()
    try:
        floor = n * lat / c
        clients = {
            "recipe": recipe_runner(port),
            "flowkit": flowkit_runner(port),
            "raw": raw_runner(port),
            "aiohttp": aiohttp_runner(port),
        }
        with_latency = measure(clients, n, c, lat, args.repeat)
        no_latency = measure(clients, n, c, 0.0, args.repeat)
        flowkit_lat, raw_lat, aio_lat = (with_latency[k][0] for k in ("flowkit", "raw", "aiohttp"))
        flowkit_zero, raw_zero, aio_zero = (no_latency[k][0] for k in ("flowkit", "raw", "aiohttp"))

        def cpu(name: str) -> str:
            return f"client CPU {no_latency[name][1] / n * 1e6:.0f} us/request"

        recipe_lat, recipe_zero = with_latency["recipe"][0], no_latency["recipe"][0]
        print(f"\nwith {lat * 1000:.0f} ms latency (floor {floor:.2f} s):")
        print(
            f"  recipe  {recipe_lat:.3f} s  = {recipe_lat / floor:.2f}x floor (target <= 1.3x), "
            f"{recipe_lat / raw_lat:.2f}x raw  [flowkit run: {n} items, 1 journaled POST each]"
        )
        print(
            f"  flowkit {flowkit_lat:.3f} s  = {flowkit_lat / floor:.2f}x floor (target <= 1.3x), "
            f"{flowkit_lat / raw_lat:.2f}x raw"
        )
        print(f"  raw     {raw_lat:.3f} s  = {raw_lat / floor:.2f}x floor")
        print(f"  aiohttp {aio_lat:.3f} s  = {aio_lat / floor:.2f}x floor (reference)")
        print("with no latency (ratio: median over the rounds of the time over the raw run's):")
        print(
            f"  recipe  {median_ratio(0.0, 'recipe', 'raw'):.2f}x raw (target <= 3x)  "
            f"[{paired(0.0, 'recipe', 'raw')}; best {recipe_zero:.3f} s = "
            f"{recipe_zero / raw_zero:.2f}x the best raw]"
        )
        print(
            f"  flowkit {median_ratio(0.0, 'flowkit', 'raw'):.2f}x raw (target <= 3x)  "
            f"[best {flowkit_zero:.3f} s]; " + cpu("flowkit")
        )
        print(f"  raw     best {raw_zero:.3f} s; " + cpu("raw"))
        print(
            f"  aiohttp {median_ratio(0.0, 'aiohttp', 'raw'):.2f}x raw (reference)  "
            f"[best {aio_zero:.3f} s]; " + cpu("aiohttp")
        )
        if not args.skip_httpx:
            reference = {"httpx": httpx_runner(port)}
            httpx_lat = measure(reference, n, c, lat, 1)["httpx"][0]
            httpx_zero = measure(reference, n, c, 0.0, 1)["httpx"][0]
            print("reference, httpx.AsyncClient default transport (one run each):")
            print(
                f"  {lat * 1000:.0f} ms latency {httpx_lat:.3f} s = {httpx_lat / floor:.2f}x floor"
            )
            print(f"  no latency    {httpx_zero:.3f} s = {httpx_zero / raw_zero:.2f}x raw")
        print(f"load average after the run: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
