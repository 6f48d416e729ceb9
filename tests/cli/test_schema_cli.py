"""`flowkit schema` through the real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FLOWKIT = str(Path(sys.executable).parent / "flowkit")


def test_schema_to_stdout_and_to_a_file(tmp_path: Path) -> None:
    printed = subprocess.run(
        [FLOWKIT, "schema"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0
    schema = json.loads(printed.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "noop.write.input" in schema["$defs"]
    written = subprocess.run(
        [FLOWKIT, "schema", "-o", "flowkit.schema.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (written.returncode, written.stdout) == (0, "")
    assert json.loads((tmp_path / "flowkit.schema.json").read_text()) == schema
