"""Ctrl-C: writes that were not sent yet are recorded as not sent, so nothing turns "unknown".

A write without idempotency whose intent is journaled becomes `unknown` on the next run (a
human must check it). When the run is interrupted while such a write waits for its intent to
be durable, flowkit knows it never sent it, and says so in the journal instead.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import FLOWKIT, Flowkit

RECIPE = """\
flowkit: 1
name: interrupted
concurrency: 256
trigger:
  use: noop.read
  with: {items: 10000}
  key: ${{ item.id }}
steps:
  - id: write
    use: noop.write
    with: {data: {id: "${{ item.id }}"}}
  - id: notify
    use: noop.notify
    needs: [write]
    with: {message: "done ${{ item.id }}"}
"""

# The same writes with `notify` beside `write`: the two start in one wave, whose intents
# settle together before either is sent (ItemRun.run_wave), and both must be withdrawn.
PARALLEL = (
    RECIPE.replace("    needs: [write]\n", "")
    + """\
  - id: record
    use: noop.write
    needs: [write]
    with: {data: {ref: "${{ steps.write.output.id }}"}}
"""
)

# A read beside those writes: it is sent at once while the writes wait for their intents
# (ItemRun.mixed_wave); an interruption cancels it and withdraws the writes not yet sent.
MIXED = (
    PARALLEL
    + """\
  - id: peek
    use: noop.read
    with: {items: 1, prefix: "${{ item.id }}"}
"""
)


def _count(state: Path, sql: str) -> int:
    with sqlite3.connect(state) as conn:
        return int(conn.execute(sql).fetchone()[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("writer", "text"),
    [("thread", RECIPE), ("process", RECIPE), ("process", PARALLEL), ("process", MIXED)],
    ids=["thread", "process", "parallel-steps", "read-beside-writes"],
)
def test_ctrl_c_leaves_no_write_unknown_and_the_next_run_finishes(
    tmp_path: Path, writer: str, text: str
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent(text), encoding="utf-8")
    state = tmp_path / "state.db"
    args = ["run", str(recipe), "--state", str(state), "--quiet"]
    flowkit = Flowkit(env={"FLOWKIT_STATE_WRITER": writer})
    proc = subprocess.Popen(
        [str(FLOWKIT), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=flowkit.environment("interrupted"),
        start_new_session=True,  # Ctrl-C reaches the whole process group, the writer too
    )
    try:
        deadline = time.monotonic() + 60  # bounds a hang; the condition is what we wait for
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                done = _count(state, "SELECT COUNT(*) FROM items WHERE status = 'done'")
            except sqlite3.OperationalError:  # not created or not migrated yet
                done = 0
            if done >= 100:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    started = _count(state, "SELECT COUNT(*) FROM steps WHERE status = 'started'")
    withdrawn = _count(state, "SELECT COUNT(*) FROM steps WHERE error LIKE 'the run stopped%'")
    assert started == 0  # every intent was either answered or withdrawn
    assert withdrawn > 0  # 256 items in flight: some were waiting to send
    again = flowkit.run(args, timeout=120)
    assert again.code == 0, again.stderr
    assert _count(state, "SELECT COUNT(*) FROM items WHERE status != 'done'") == 0
    assert _count(state, "SELECT COUNT(*) FROM steps WHERE status != 'ok'") == 0
