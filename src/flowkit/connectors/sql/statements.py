"""Statement scanning for the `sql` connector: statements, keywords and `:name` parameters,
with string literals, quoted names and comments blanked out. Pure text, no database."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from flowkit.connectors.base import ConnectorError, ErrorKind

# Words that make a statement change data or schema; refused in `query`.
_WRITE_WORDS = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "UPSERT",
        "INTO",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "ATTACH",
        "DETACH",
        "PRAGMA",
        "VACUUM",
        "REINDEX",
    }
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")
_PARAM = re.compile(r"(?<![:\w\\]):([A-Za-z_]\w*)(?!:)")


@dataclasses.dataclass(frozen=True)
class Scan:
    """What flowkit needs to know about a statement, with literals and comments blanked."""

    code: str  # the statement with string literals, quoted names and comments blanked out
    escaped: str  # the text with ':' in literals and comments escaped for SQLAlchemy's text()
    statements: int  # non-empty statements separated by ';'
    params: tuple[str, ...]  # named parameters, in order of first use

    @property
    def first_word(self) -> str:
        match = _WORD.search(self.code)
        return match.group(0).upper() if match else ""


def scan(sql: str) -> Scan:
    """Tokenise just enough SQL to find statements, keywords and `:name` parameters."""
    code: list[str] = []
    escaped: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            code.append(" ")
            escaped.append(sql[i:end].replace(":", "\\:"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise _invalid("sql: a /* comment is not closed")
            code.append(" ")
            escaped.append(sql[i : end + 2].replace(":", "\\:"))
            i = end + 2
        elif ch in "'\"`":
            j = i + 1
            while True:
                j = sql.find(ch, j)
                if j < 0:
                    raise _invalid(f"sql: a {ch} quote is not closed")
                if sql.startswith(ch * 2, j):
                    j += 2  # a doubled quote is an escaped quote
                    continue
                break
            code.append(" ")
            escaped.append(sql[i : j + 1].replace(":", "\\:"))
            i = j + 1
        else:
            code.append(ch)
            escaped.append(ch)
            i += 1
    text = "".join(code)
    statements = sum(1 for part in text.split(";") if part.strip())
    params = tuple(dict.fromkeys(_PARAM.findall(text)))
    return Scan(code=text, escaped="".join(escaped), statements=statements, params=params)


def check_read_only(sql: str) -> Scan:
    """Refuse anything but one SELECT/WITH statement that names no data-changing keyword."""
    found = scan(sql)
    if found.statements != 1:
        raise _invalid(
            f"sql: `query` runs exactly one statement, this has {found.statements}",
            hint="split it into several steps, or use `sql.execute` for changes",
        )
    if found.first_word not in ("SELECT", "WITH"):
        raise _invalid(
            f"sql: `query` only runs SELECT or WITH statements, not {found.first_word or '?'}",
            hint="use `sql.execute` for statements that change data",
        )
    writes = sorted({w.upper() for w in _WORD.findall(found.code)} & _WRITE_WORDS)
    if writes:
        raise _invalid(
            f"sql: `query` is read-only but the statement contains {', '.join(writes)}",
            hint="use `sql.execute` for statements that change data",
        )
    return found


def _check_params(found: Scan, params: Sequence[dict[str, Any]]) -> None:
    for index, values in enumerate(params):
        missing = [name for name in found.params if name not in values]
        if missing:
            where = f" in parameter set {index + 1}" if len(params) > 1 else ""
            names = ", ".join(f":{name}" for name in missing)
            raise _invalid(f"sql: no value for {names}{where} in `params`")


def _invalid(message: str, hint: str | None = None) -> ConnectorError:
    return ConnectorError(message, kind=ErrorKind.VALIDATION, hint=hint)
