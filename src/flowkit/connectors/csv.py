"""The `csv` connector: read, write and append CSV files (e.g. a warehouse stock export).

Relative paths resolve against the connection's `base_dir`, itself relative to the recipe's
folder (`Runtime.base_dir`); absolute paths are used as they are. The first record is the
header (names are stripped of surrounding spaces); blank lines are skipped; a record with a
different number of fields than the header, a duplicate key or a value that is not a number in
a `numeric` column is an error naming the file and line. Values stay strings unless listed in
`numeric`. `write` replaces a whole file atomically (temporary file in the same directory,
fsync, rename), so a reader never sees half a file and repeating it yields the same file
(idempotency: natural); `append` adds rows and is not idempotent.

A UTF-8 byte-order mark (Excel exports) is skipped when the encoding is UTF-8. Files are read
and written in a worker thread; writes to one connection are serialised by a lock.

References: https://docs.python.org/3/library/csv.html (reader/writer, `newline=""`,
`strict`, `line_num`), https://docs.python.org/3/library/os.html#os.replace.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
    Input,
    Output,
    Runtime,
    to_thread,
)

__all__ = ["CsvSettings", "connector"]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class CsvSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_dir: str | None = Field(
        None,
        description="Folder that relative file paths resolve against; relative to the "
        "recipe's folder. Default: the recipe's folder.",
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="Field separator.")
    encoding: str = Field("utf-8", description="Text encoding of the files.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding '{value}'") from None
        return value


@dataclass
class CsvSession:
    base: Path
    delimiter: str
    encoding: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, path: str) -> Path:
        if not path.strip():
            raise ConnectorError("csv: the path is empty", kind=ErrorKind.VALIDATION)
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.base / candidate

    @property
    def read_encoding(self) -> str:
        # utf-8-sig drops a leading byte-order mark and otherwise reads plain UTF-8
        return "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding


async def _open(settings: CsvSettings, runtime: Runtime) -> CsvSession:
    base = Path(runtime.base_dir)
    if settings.base_dir:
        base = base / Path(settings.base_dir).expanduser()
    return CsvSession(base=base, delimiter=settings.delimiter, encoding=settings.encoding)


def _invalid(message: str) -> ConnectorError:
    return ConnectorError(message, kind=ErrorKind.VALIDATION)


@contextlib.contextmanager
def _file_errors(display: str) -> Iterator[None]:
    """Turn OS and decoding errors into ConnectorErrors naming the file."""
    try:
        yield
    except FileNotFoundError as exc:
        missing = exc.filename or display
        raise ConnectorError(
            f"{display}: no such file or directory ({missing})", kind=ErrorKind.NOT_FOUND
        ) from exc
    except IsADirectoryError as exc:
        raise ConnectorError(f"{display}: is a directory", kind=ErrorKind.VALIDATION) from exc
    except PermissionError as exc:
        raise ConnectorError(f"{display}: permission denied", kind=ErrorKind.PERMANENT) from exc
    except UnicodeError as exc:
        raise _invalid(f"{display}: not valid text in the configured encoding: {exc}") from exc
    except OSError as exc:
        raise ConnectorError(f"{display}: {exc.strerror or exc}", kind=ErrorKind.PERMANENT) from exc


# --- read -------------------------------------------------------------------------------------


class ReadInput(Input):
    path: str = Field(description="The CSV file (relative to `base_dir`).")
    key_column: str | None = Field(
        None, description="A column that must be present, non-empty and unique in every row."
    )
    numeric: list[str] = Field(
        default_factory=list,
        description="Columns converted to numbers (int, else float; empty becomes null).",
    )


class ReadOutput(Output):
    items: list[dict[str, Any]] = Field(description="One mapping per row, keyed by the header.")
    count: int = Field(description="Number of rows.")


def _number(text: str) -> int | float | None:
    value = text.strip()
    if not value:
        return None
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    raise ValueError(value)


def _header(row: list[str], display: str, line: int) -> list[str]:
    names = [name.strip() for name in row]
    seen: set[str] = set()
    for index, name in enumerate(names, start=1):
        if not name:
            raise _invalid(f"{display}:{line}: column {index} of the header has no name")
        if name in seen:
            raise _invalid(f"{display}:{line}: the header names column '{name}' twice")
        seen.add(name)
    return names


def _read_rows(session: CsvSession, input: ReadInput) -> list[dict[str, Any]]:
    display = input.path
    path = session.resolve(input.path)
    items: list[dict[str, Any]] = []
    with (
        _file_errors(display),
        path.open(encoding=session.read_encoding, newline="") as handle,
    ):
        reader = csv.reader(handle, delimiter=session.delimiter, strict=True)
        header: list[str] | None = None
        keys: dict[str, int] = {}
        numeric: list[str] = []
        try:
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if header is None:
                    header = _header(row, display, line)
                    known = ", ".join(header)
                    wanted = [input.key_column] if input.key_column else []
                    for column in [*wanted, *input.numeric]:
                        if column not in header:
                            raise _invalid(
                                f"{display}:{line}: no column '{column}' (columns: {known})"
                            )
                    numeric = list(dict.fromkeys(input.numeric))
                    continue
                if len(row) != len(header):
                    raise _invalid(
                        f"{display}:{line}: the row has {len(row)} fields, "
                        f"the header has {len(header)}"
                    )
                item: dict[str, Any] = dict(zip(header, row, strict=True))
                for column in numeric:
                    try:
                        item[column] = _number(item[column])
                    except ValueError:
                        raise _invalid(
                            f"{display}:{line}: column '{column}' is not a number: {item[column]!r}"
                        ) from None
                if input.key_column:
                    key = item[input.key_column]
                    if not str(key).strip():
                        raise _invalid(f"{display}:{line}: empty key column '{input.key_column}'")
                    if key in keys:
                        raise _invalid(
                            f"{display}:{line}: duplicate {input.key_column} '{key}' "
                            f"(first on line {keys[key]})"
                        )
                    keys[key] = line
                items.append(item)
        except csv.Error as exc:
            raise _invalid(f"{display}:{reader.line_num}: malformed CSV: {exc}") from exc
    return items


class Read(Action[ReadInput, ReadOutput]):
    name = "read"
    description = "Read a CSV file into a list of rows (the first record is the header)."
    effect = Effect.READ
    Input = ReadInput
    Output = ReadOutput

    async def run(self, session: CsvSession, input: ReadInput, call: CallContext) -> ReadOutput:
        items = await to_thread(_read_rows, session, input)
        return ReadOutput(items=items, count=len(items))


# --- write and append -------------------------------------------------------------------------


class WriteInput(Input):
    path: str = Field(description="The CSV file (relative to `base_dir`).")
    rows: list[dict[str, Any]] = Field(description="The rows to write.")
    columns: list[str] | None = Field(
        None, description="Column order; default: the rows' keys in order of appearance."
    )


class AppendInput(Input):
    path: str = Field(description="The CSV file (relative to `base_dir`); created if missing.")
    rows: list[dict[str, Any]] = Field(description="The rows to add.")
    columns: list[str] | None = Field(
        None,
        description="Column order for a new file; must match the header of an existing one.",
    )


class WriteOutput(Output):
    path: str = Field(description="The file written.")
    count: int = Field(description="Number of rows written.")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _columns(rows: list[dict[str, Any]], columns: list[str] | None) -> list[str]:
    if columns is not None:
        if len(set(columns)) != len(columns):
            raise _invalid("csv: `columns` names a column twice")
        return list(columns)
    return list(dict.fromkeys(key for row in rows for key in row))


def _records(rows: list[dict[str, Any]], columns: list[str], display: str) -> Iterable[list[str]]:
    allowed = set(columns)
    for index, row in enumerate(rows, start=1):
        extra = [key for key in row if key not in allowed]
        if extra:
            raise _invalid(
                f"{display}: row {index} has keys that are not columns: {', '.join(extra)} "
                f"(columns: {', '.join(columns)})"
            )
        yield [_cell(row.get(column)) for column in columns]


def _write_file(session: CsvSession, input: WriteInput) -> str:
    display = input.path
    path = session.resolve(input.path)
    columns = _columns(input.rows, input.columns)
    records = list(_records(input.rows, columns, display))  # validate before touching disk
    with session.lock, _file_errors(display):
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding=session.encoding, newline="") as handle:
                writer = csv.writer(handle, delimiter=session.delimiter)
                if columns:
                    writer.writerow(columns)
                writer.writerows(records)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    return str(path)


def _existing_header(session: CsvSession, path: Path, display: str) -> tuple[list[str], bool]:
    """The header of an existing non-empty file, and whether the file ends with a newline."""
    with path.open(encoding=session.read_encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=session.delimiter, strict=True)
        try:
            first = next((row for row in reader if row), None)
        except csv.Error as exc:
            raise _invalid(f"{display}:{reader.line_num}: malformed CSV: {exc}") from exc
    header = _header(first, display, 1) if first else []
    with path.open("rb") as raw:
        raw.seek(-1, os.SEEK_END)
        ends_with_newline = raw.read(1) in (b"\n", b"\r")
    return header, ends_with_newline


def _append_file(session: CsvSession, input: AppendInput) -> str:
    display = input.path
    path = session.resolve(input.path)
    with session.lock, _file_errors(display):
        exists = path.exists() and path.stat().st_size > 0
        if exists:
            header, ends_with_newline = _existing_header(session, path, display)
            if input.columns is not None and list(input.columns) != header:
                raise _invalid(
                    f"{display}: `columns` ({', '.join(input.columns)}) differ from the "
                    f"file's header ({', '.join(header)})"
                )
            columns = header
        else:
            columns = _columns(input.rows, input.columns)
            ends_with_newline = True
        records = list(_records(input.rows, columns, display))
        with path.open("a", encoding=session.encoding, newline="") as handle:
            writer = csv.writer(handle, delimiter=session.delimiter)
            if not ends_with_newline:
                handle.write(writer.dialect.lineterminator)
            if not exists and columns:
                writer.writerow(columns)
            writer.writerows(records)
            handle.flush()
            os.fsync(handle.fileno())
    return str(path)


class Write(Action[WriteInput, WriteOutput]):
    name = "write"
    description = "Replace a CSV file with the given rows, atomically."
    effect = Effect.WRITE
    idempotency = Idempotency.NATURAL
    Input = WriteInput
    Output = WriteOutput

    async def run(self, session: CsvSession, input: WriteInput, call: CallContext) -> WriteOutput:
        path = await to_thread(_write_file, session, input)
        return WriteOutput(path=path, count=len(input.rows))


class Append(Action[AppendInput, WriteOutput]):
    name = "append"
    description = "Add rows to the end of a CSV file (writing the header if the file is new)."
    effect = Effect.WRITE
    idempotency = Idempotency.NONE
    Input = AppendInput
    Output = WriteOutput

    async def run(self, session: CsvSession, input: AppendInput, call: CallContext) -> WriteOutput:
        path = await to_thread(_append_file, session, input)
        return WriteOutput(path=path, count=len(input.rows))


connector = Connector(
    "csv",
    description="Read, write and append CSV files relative to the recipe's folder.",
    settings=CsvSettings,
    actions=[Read(), Write(), Append()],
    open=_open,
    docs_url="https://docs.python.org/3/library/csv.html",
)
