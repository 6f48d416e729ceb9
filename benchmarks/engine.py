"""Engine overhead benchmark: 10,000 items x 3 steps on the no-op connector, journal on.

What it measures: the whole `flowkit run` path in-process (trigger, admission, per-item graph,
expression rendering, input validation, intent + outcome journaling with SQLite WAL and
synchronous=FULL, summary) minus process start-up. The connector does no I/O, so the figure is
flowkit's own cost per step and item.

    .venv/bin/python benchmarks/engine.py [--items 10000] [--concurrency 64]

Prints microseconds per step-item and the peak resident memory. Targets on the 2-core CI
machine: <= 100 us per step-item, < 200 MB peak.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RECIPE = """\
flowkit: 1
name: bench
concurrency: {concurrency}
trigger:
  use: noop.read
  with: {{items: {items}, cursor: "${{{{ cursor }}}}"}}
  key: ${{{{ item.id }}}}
  cursor: ${{{{ output.cursor }}}}
steps:
  - id: fetch
    use: noop.write
    with:
      data: {{id: "${{{{ item.id }}}}", n: "${{{{ item.n }}}}"}}
  - id: record
    use: noop.write
    with:
      data: {{ref: "${{{{ steps.fetch.output.id }}}}", label: "item ${{{{ item.n }}}}"}}
  - id: tell
    use: noop.notify
    with:
      message: "done ${{{{ item.id }}}}"
"""


async def main(items: int, concurrency: int) -> None:
    from flowkit.engine.runner import RunOptions, run_recipe
    from flowkit.recipe.loader import load_recipe
    from flowkit.state.sqlite import SqliteStateStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(textwrap.dedent(RECIPE.format(items=items, concurrency=concurrency)))
        loaded = load_recipe(path)
        store = SqliteStateStore(Path(tmp) / "state.db")
        await store.open()
        start = time.perf_counter()
        summary = await run_recipe(loaded, store, RunOptions())
        elapsed = time.perf_counter() - start
        await store.close()
        size = (Path(tmp) / "state.db").stat().st_size
    assert summary.done == items, summary.as_dict()
    step_items = items * 3
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"command:   {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"machine:   {platform.platform()}, {os.cpu_count()} cpus, Python "
        f"{platform.python_version()}"
    )
    print(
        f"workload:  {items} items x 3 steps (2 idempotent writes + 1 notify), "
        f"concurrency {concurrency}, SQLite WAL synchronous=FULL, state file {size / 1e6:.1f} MB"
    )
    print(f"total:     {elapsed:.2f} s")
    print(f"per step-item: {elapsed / step_items * 1e6:.1f} us   (target <= 100 us)")
    print(f"peak RSS:  {peak_mb:.0f} MB   (target < 200 MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.concurrency))
