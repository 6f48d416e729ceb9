"""`flowkit schema` through the real process (printing to stdout is tested in-process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FLOWKIT = str(Path(sys.executable).parent / "flowkit")


def test_schema_to_a_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [FLOWKIT, "schema", "-o", "flowkit.schema.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, "")
    schema = json.loads((tmp_path / "flowkit.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "noop.write.input" in schema["$defs"]
    assert "noop.write" in schema["$defs"]["Step"]["properties"]["use"]["examples"]
