"""Reading a recipe file (size cap) and decoding it (UTF-8 only, no NUL bytes)."""

from __future__ import annotations

from pathlib import Path

from flowkit.errors import Problem, RecipeInvalid

MAX_BYTES = 5 * 1024 * 1024  # 5 MB: a recipe is a few KB; this bounds time and memory

_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def read_source(path: Path, *, limit: int = MAX_BYTES) -> bytes:
    """The bytes of a recipe file; raises RecipeInvalid (size cap, directory, unreadable)."""
    file = str(path)

    def fail(message: str, hint: str | None = None) -> RecipeInvalid:
        return RecipeInvalid([Problem(file, 1, 1, message, hint, rule="file")])

    try:
        if path.is_dir():
            raise fail("is a directory, not a recipe file")
        size = path.stat().st_size
        if size > limit:
            raise fail(
                f"file is larger than the {_megabytes(limit)} limit ({_megabytes(size)})",
                "a recipe is a few kilobytes; is this the right file?",
            )
        with path.open("rb") as fh:
            data = fh.read(limit + 1)  # special files may report size 0
    except FileNotFoundError:
        raise fail("file not found") from None
    except PermissionError:
        raise fail("permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise fail(f"file is larger than the {_megabytes(limit)} limit")
    return data


def _megabytes(size: int) -> str:
    mb = size / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 10 or mb == int(mb) else f"{mb:.1f} MB"


def decode_source(data: bytes, file: str) -> str:
    """UTF-8 text of `data` (a BOM is dropped); NUL bytes and invalid UTF-8 are problems."""
    for bom, encoding in _OTHER_BOMS:
        if data.startswith(bom):
            raise RecipeInvalid(
                [
                    Problem(
                        file,
                        1,
                        1,
                        f"file is encoded as {encoding}, not UTF-8",
                        "save the file as UTF-8",
                        rule="file",
                    )
                ]
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        line, col = _byte_position(data, nul)
        raise RecipeInvalid(
            [
                Problem(
                    file,
                    line,
                    col,
                    "file contains NUL bytes; it looks like a binary file, not YAML",
                    rule="file",
                )
            ]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(data, exc.start)
        raise RecipeInvalid(
            [
                Problem(
                    file,
                    line,
                    col,
                    f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                    "save the file as UTF-8",
                    rule="file",
                )
            ]
        ) from None
    return text.removeprefix("\ufeff")


def _byte_position(data: bytes, index: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, index) + 1
    column = len(data[line_start:index].decode("utf-8", errors="replace"))
    return data.count(b"\n", 0, index) + 1, column + 1
