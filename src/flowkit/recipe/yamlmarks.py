"""Source marks: where each value and key of a loaded document starts (path -> mark)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """Where a value (or key) starts in the file, 1-based.

    For scalars that may hold expressions, `shift` or `indent` let `locate` map a character
    offset in the value to its exact column: `shift` when the value is written on one line
    character for character (plain or quoted without escapes), `indent` for literal blocks.
    """

    line: int
    col: int
    shift: int | None = None
    indent: int | None = None

    def locate(self, value: str, offset: int) -> tuple[int, int]:
        """(line, col) of character `offset` of `value`, or the value's start if unknown."""
        if self.shift is not None:
            return self.line, self.col + self.shift + offset
        if self.indent is not None:
            line_no = value.count("\n", 0, offset)
            line_start = value.rfind("\n", 0, offset) + 1
            return self.line + 1 + line_no, self.indent + 1 + offset - line_start
        return self.line, self.col


@dataclass
class YamlDocument:
    """Loaded data plus `marks` (path -> value start) and `key_marks` (path -> key start)."""

    data: Any
    marks: dict[YamlPath, Mark]
    key_marks: dict[YamlPath, Mark]

    def mark(self, path: YamlPath) -> Mark:
        """The mark of `path`, or of its nearest ancestor that has one."""
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path, Mark(1, 1))
