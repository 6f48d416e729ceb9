"""A minimal PEP 517 build backend for the flowkit-greet test plugin.

It reads `[project]` from pyproject.toml and builds a pure-Python wheel holding the modules
listed in `[tool.greet-backend] modules`, with METADATA, WHEEL, entry_points.txt and RECORD in
the `.dist-info` directory, so that pip can install the package offline with
`--no-build-isolation` and nothing but the standard library.

References: https://peps.python.org/pep-0517/ (hooks), https://packaging.python.org/en/latest/specifications/binary-distribution-format/
(wheel layout, RECORD hashes), https://packaging.python.org/en/latest/specifications/core-metadata/
and https://packaging.python.org/en/latest/specifications/entry-points/ (entry_points.txt).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TAG = "py3-none-any"


def _config() -> tuple[dict[str, Any], list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"], list(data["tool"]["greet-backend"]["modules"])


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info(project: dict[str, Any]) -> str:
    return f"{_normal(project['name'])}-{project['version']}.dist-info"


def _metadata_files(project: dict[str, Any]) -> dict[str, bytes]:
    meta = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
    ]
    if "requires-python" in project:
        meta.append(f"Requires-Python: {project['requires-python']}")
    meta += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    entry_points = []
    for group, entries in sorted(project.get("entry-points", {}).items()):
        entry_points.append(f"[{group}]")
        entry_points += [f"{name} = {value}" for name, value in sorted(entries.items())]
        entry_points.append("")
    wheel = [
        "Wheel-Version: 1.0",
        "Generator: greet_backend",
        "Root-Is-Purelib: true",
        f"Tag: {TAG}",
    ]
    info = _dist_info(project)
    return {
        f"{info}/METADATA": ("\n".join(meta) + "\n").encode(),
        f"{info}/WHEEL": ("\n".join(wheel) + "\n").encode(),
        f"{info}/entry_points.txt": "\n".join(entry_points).encode(),
    }


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Any = None) -> str:
    project, _modules = _config()
    for name, data in _metadata_files(project).items():
        target = Path(metadata_directory) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return _dist_info(project)


def build_wheel(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    project, modules = _config()
    files = {f"{m}.py": (ROOT / f"{m}.py").read_bytes() for m in modules}
    files.update(_metadata_files(project))
    record = f"{_dist_info(project)}/RECORD"
    lines = [_record_line(path, data) for path, data in files.items()] + [f"{record},,"]
    files[record] = ("\n".join(lines) + "\n").encode()
    filename = f"{_normal(project['name'])}-{project['version']}-{TAG}.whl"
    with zipfile.ZipFile(Path(wheel_directory) / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return filename


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    project, modules = _config()
    base = f"{_normal(project['name'])}-{project['version']}"
    sources = ["pyproject.toml", "build_backend/greet_backend.py", *(f"{m}.py" for m in modules)]
    filename = f"{base}.tar.gz"
    with tarfile.open(Path(sdist_directory) / filename, "w:gz") as sdist:
        for rel in sources:
            data = (ROOT / rel).read_bytes()
            info = tarfile.TarInfo(f"{base}/{rel}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return filename
