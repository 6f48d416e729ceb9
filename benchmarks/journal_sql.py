"""What the journal costs SQLite: the rows `benchmarks/engine.py` writes, replayed on a fresh
state file with the real schema and statements, without the engine or the writer process.

    .venv/bin/python benchmarks/journal_sql.py [--items 6000] [--per-commit 19] [variant ...]

Per item, as the engine writes them: the item row is admitted first, then per commit
`--per-commit` items each write three intents (`started`), three outcomes (`ok`), an attempt
row for each, and the item's status. Prints microseconds per step-item spent in the
statements and in `COMMIT`, for each variant:

  base          the rows as the engine writes them today
  no-started    without the attempt rows of intents (a contract decision, see performance.md)
  no-fk         with `PRAGMA foreign_keys = OFF`
  no-attempts-index  without the `attempts_by_run` index
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from flowkit.state import migrations
from flowkit.state.sql.ops import PUT_ATTEMPT, PUT_STEP

VARIANTS = ("base", "no-started", "no-fk", "no-attempts-index")
STEPS = ("fetch", "tell", "record")
SET_DONE = (
    "UPDATE items SET status = 'done', wake_at = NULL, error = NULL, updated_at = 4"
    " WHERE recipe = 'bench' AND item_key = ?"
)


def replay(variant: str, items: int, per_commit: int, path: Path) -> tuple[float, float]:
    """Seconds spent in statements and in COMMIT for `items` items, on a new file `path`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA foreign_keys = {'OFF' if variant == 'no-fk' else 'ON'}")
    migrations.migrate(conn, str(path), 1.0)
    if variant == "no-attempts-index":
        conn.execute("DROP INDEX attempts_by_run")
    conn.execute("INSERT INTO runs VALUES ('r1', 'bench', 'h', 1, NULL, 'running', '{}')")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO items (recipe, item_key, status, data, admitted_at, updated_at)"
        " VALUES ('bench', ?, 'pending', ?, 1, 1)",
        [(f"item-{n}", json.dumps({"id": f"item-{n}", "n": n})) for n in range(items)],
    )
    conn.execute("COMMIT")
    output = json.dumps({"id": "item-1", "n": "1", "written": True})
    statements = commits = 0.0
    for start in range(0, items, per_commit):
        keys = [f"item-{n}" for n in range(start, min(items, start + per_commit))]
        steps, attempts = [], []
        for key in keys:
            for step in STEPS:
                steps.append(("bench", key, step, "started", None, 0, None, "fk-" + key, "fp", 2.0))
                if variant != "no-started":
                    attempts.append(("r1", "bench", key, step, 0, "started", None, None, 2.0))
            for step in STEPS:
                steps.append(("bench", key, step, "ok", output, 1, None, None, None, 3.0))
                attempts.append(("r1", "bench", key, step, 1, "ok", None, None, 3.0))
        began = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(PUT_STEP, steps)
        conn.executemany(PUT_ATTEMPT, attempts)
        conn.executemany(SET_DONE, [(key,) for key in keys])
        written = time.perf_counter()
        conn.execute("COMMIT")
        statements += written - began
        commits += time.perf_counter() - written
    conn.close()
    return statements, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--per-commit", type=int, default=19, help="items per transaction")
    parser.add_argument("variants", nargs="*", metavar="variant", help=", ".join(VARIANTS))
    args = parser.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant {', '.join(sorted(unknown))}; choose from {VARIANTS}")
    print(f"{args.items} items x 3 steps, {args.per_commit} items per commit, WAL, FULL")
    step_items = args.items * len(STEPS)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        for n, variant in enumerate(args.variants or VARIANTS):
            path = Path(tmp) / f"{n}-{variant}.db"
            statements, commits = replay(variant, args.items, args.per_commit, path)
            print(
                f"  {variant:18s} statements {statements / step_items * 1e6:5.1f} us, "
                f"commit {commits / step_items * 1e6:5.1f} us per step-item"
            )


if __name__ == "__main__":
    main()
