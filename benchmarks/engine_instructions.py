"""Instructions per item of the engine benchmark's recipe: a figure that does not drift.

`benchmarks/engine.py` measures time, which on the CI machine moves by up to 2x from minute
to minute, so a change of a few per cent cannot be seen in it. This counts the machine
instructions the engine executes per item instead (valgrind's callgrind), which is the same
on every run of the same code:

    .venv/bin/python benchmarks/engine_instructions.py [--concurrency 64] [--src PATH]

It runs the recipe of `benchmarks/engine.py` twice under callgrind, with 300 and 1,300 items,
and prints the difference divided by 1,000: the cost of one more item, without start-up,
imports and the run's fixed costs. The journal is settled at the next turn of the event
loop instead of by SQLite (`send_journal` replaced), so the figure is the engine's own work:
graph, rendering, validation, keys, journal batching, the event loop's turns. `--src` points
at another checkout's `src` to compare two versions. Needs valgrind; takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_items(items: int, concurrency: int) -> None:
    """The child: one run of the benchmark's recipe on a journal that settles at once."""
    sys.path.insert(0, str(HERE))
    import engine  # type: ignore[import-not-found]
    from flowkit.engine.dryrun import OverlayStore
    from flowkit.engine.runner import RunOptions, run_recipe
    from flowkit.recipe.loader import load_recipe

    class Instant(OverlayStore):
        def send_journal(self, run_id: str, steps: Any, items: Any, done: Any) -> None:
            done.get_loop().call_soon(done.set_result, None)

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.yaml"
            text = engine.RECIPE.format(items=items, concurrency=concurrency)
            path.write_text(textwrap.dedent(text))
            summary = await run_recipe(load_recipe(path), Instant(None), RunOptions())
            assert summary.done == items, summary.as_dict()

    asyncio.run(main())


def count(items: int, concurrency: int, src: str | None) -> int:
    """Instructions of a whole child process running `items` items (callgrind's total)."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                str(items),
                "--concurrency",
                str(concurrency),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit("callgrind wrote no total")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--src", help="another checkout's src directory to measure")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        run_items(args.child, args.concurrency)
        raise SystemExit(0)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    small = count(300, args.concurrency, args.src)
    large = count(1300, args.concurrency, args.src)
    print(f"command:      {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"workload:     the recipe of benchmarks/engine.py, concurrency {args.concurrency}, "
        "journal settled at the next loop turn (no SQLite)"
    )
    print(f"instructions: {(large - small) / 1000:,.0f} per item (1,300 items minus 300, / 1,000)")
