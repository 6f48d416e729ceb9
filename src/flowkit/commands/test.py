"""`flowkit test [PATHS]`: run recipe tests (`*.test.yaml`) offline; see docs/testing.md.

Exit codes: 0 every test passed, 1 a test failed, 2 a test file or its recipe is invalid (or no
test file was found).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import IO

from flowkit.errors import ExitCode, FlowkitError


def run(paths: list[str], *, stream: IO[str] | None = None) -> int:
    from flowkit import redact
    from flowkit.testing import TestFileInvalid, arun_test_file, discover, load_test_file

    out = stream or sys.stdout
    started = time.perf_counter()

    def write(line: str) -> None:
        out.write(redact.redact_text(line) + "\n")

    try:
        files = discover([Path(p) for p in paths])
    except FlowkitError as exc:
        sys.stderr.write(f"flowkit: error: {exc}\n")
        return ExitCode.INVALID
    if not files:
        where = ", ".join(paths)
        sys.stderr.write(
            f"flowkit: error: no test files (*.test.yaml) found in {where}\n"
            "  hint: a test file sits next to its recipe, e.g. recipes/x.test.yaml; "
            "see `flowkit new recipe` for a starter\n"
        )
        return ExitCode.INVALID
    invalid = 0
    passed = failed = 0
    for path in files:
        try:
            test_file = load_test_file(path)
        except TestFileInvalid as exc:
            invalid += 1
            write(f"{path}")
            for problem in exc.problems:
                write(problem.format())
            continue
        write(f"{path}")
        results = asyncio.run(arun_test_file(test_file))
        for result in results:
            for line in result.report().splitlines():
                write("  " + line)
            if result.passed:
                passed += 1
            else:
                failed += 1
    total = passed + failed
    parts = [f"{passed} passed"] + ([f"{failed} failed"] if failed else [])
    if invalid:
        parts.append(f"{invalid} invalid file{'s' if invalid > 1 else ''}")
    elapsed = time.perf_counter() - started
    write(f"{total} test{'s' if total != 1 else ''}: {', '.join(parts)} ({elapsed:.2f}s)")
    if invalid:
        return ExitCode.INVALID
    return ExitCode.FAILED if failed else ExitCode.OK
