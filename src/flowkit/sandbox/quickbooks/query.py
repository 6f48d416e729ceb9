"""The QuickBooks Online query language, as far as the sandbox serves it.

    SELECT * | count(*) | Field[, Field] FROM Entity
      [WHERE Field op value [AND ...]]      op: = < > <= >= != IN (...) LIKE '%x%'
      [ORDERBY Field [ASC|DESC][, ...]]
      [STARTPOSITION n] [MAXRESULTS m]      1-based start, MAXRESULTS up to 1000

No OR, no joins; strings in single quotes with backslash escapes; keywords case-insensitive.
Name lists (Customer, Item) yield active records only unless `Active` is filtered.
Reference: https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["MAX_RESULTS_DEFAULT", "MAX_RESULTS_LIMIT", "Query", "QueryError", "parse_query"]

MAX_RESULTS_DEFAULT = 100
MAX_RESULTS_LIMIT = 1000
QUERYABLE = ("Customer", "Item", "Invoice")

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|=|<|>)"
    r"|(?P<punct>[(),*])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
    "<=": operator.le, ">=": operator.ge,
}  # fmt: skip


class QueryError(Exception):
    """A query the service rejects: QuickBooks error code 4000 (parse) or 4001 (validation)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _parse_error(detail: str) -> QueryError:
    return QueryError("4000", f"QueryParserError: {detail}")


@dataclass
class Query:
    """A parsed select statement; `run(rows)` filters, sorts, pages and projects."""

    entity: str
    count: bool = False
    columns: list[str] = field(default_factory=list)
    conditions: list[tuple[str, str, Any]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    start: int = 1
    max_results: int = MAX_RESULTS_DEFAULT

    def matches(self, row: dict[str, Any]) -> bool:
        names = {name.casefold() for name, _, _ in self.conditions}
        if self.entity != "Invoice" and "active" not in names and not row.get("Active", True):
            return False
        return all(_compare(field_value(row, n), op, v) for n, op, v in self.conditions)

    def run(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """The page of matching rows and the total number of matches."""
        found = [r for r in rows if self.matches(r)]
        for key, descending in reversed(self.order):
            found.sort(key=lambda r, k=key: _sort_key(field_value(r, k)), reverse=descending)  # type: ignore[misc]
        page = found[self.start - 1 : self.start - 1 + self.max_results]
        if self.columns:
            page = [{k: r[k] for k in ("Id", *self.columns) if k in r} for r in page]
        return page, len(found)


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str]] = []
        text, pos = text.strip(), 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise _parse_error(f"Encountered {text[pos : pos + 12]!r} at column {pos + 1}")
            kind = match.lastgroup or ""
            self.items.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    def peek(self) -> str:
        return self.items[self.pos][1].upper() if self.pos < len(self.items) else ""

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        if self.pos >= len(self.items):
            raise _parse_error(f"unexpected end of query, expecting {value or kind or 'more'}")
        tok_kind, tok = self.items[self.pos]
        if (kind and tok_kind != kind) or (value and tok.upper() != value):
            raise _parse_error(f"Encountered {tok!r}, expecting {value or kind}")
        self.pos += 1
        return tok


def parse_query(text: str) -> Query:
    """Parse a select statement or raise `QueryError` with QuickBooks' code and detail."""
    toks = _Tokens(text)
    toks.take("word", "SELECT")
    columns: list[str] = []
    count = False
    if toks.peek() == "*":
        toks.take()
    elif toks.peek() == "COUNT":
        for kind, value in (("word", None), ("punct", "("), ("punct", "*"), ("punct", ")")):
            toks.take(kind, value)
        count = True
    else:
        columns.append(toks.take("word"))
        while toks.peek() == ",":
            toks.take()
            columns.append(toks.take("word"))
    toks.take("word", "FROM")
    entity = toks.take("word")
    canonical = next((e for e in QUERYABLE if e.casefold() == entity.casefold()), None)
    if canonical is None:
        raise QueryError("4001", f"QueryValidationError: Invalid entity name {entity}")
    query = Query(canonical, count=count, columns=columns)
    if toks.peek() == "WHERE":
        toks.take()
        _conditions(toks, query)
    if toks.peek() in ("ORDERBY", "ORDER"):
        if toks.take().upper() == "ORDER":
            toks.take("word", "BY")
        while True:
            key = toks.take("word")
            descending = toks.peek() == "DESC"
            if toks.peek() in ("ASC", "DESC"):
                toks.take()
            query.order.append((key, descending))
            if toks.peek() != ",":
                break
            toks.take()
    if toks.peek() == "STARTPOSITION":
        toks.take()
        query.start = max(1, int(toks.take("num")))
    if toks.peek() == "MAXRESULTS":
        toks.take()
        query.max_results = int(toks.take("num"))
        if not 1 <= query.max_results <= MAX_RESULTS_LIMIT:
            raise _parse_error(f"MAXRESULTS must be between 1 and {MAX_RESULTS_LIMIT}")
    if toks.pos != len(toks.items):
        raise _parse_error(f"Encountered {toks.items[toks.pos][1]!r} after the end of the query")
    return query


def _conditions(toks: _Tokens, query: Query) -> None:
    while True:
        name = toks.take("word")
        if toks.peek() == "IN":
            toks.take()
            toks.take("punct", "(")
            values = [_literal(toks.take())]
            while toks.peek() == ",":
                toks.take()
                values.append(_literal(toks.take()))
            toks.take("punct", ")")
            query.conditions.append((name, "IN", values))
        elif toks.peek() == "LIKE":
            toks.take()
            query.conditions.append((name, "LIKE", _literal(toks.take("str"))))
        else:
            query.conditions.append((name, toks.take("op"), _literal(toks.take())))
        if toks.peek() != "AND":
            break
        toks.take()
    if toks.peek() == "OR":
        raise _parse_error("OR is not supported in a WHERE clause")


def _literal(token: str) -> Any:
    if token.startswith("'"):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token.lower() in ("true", "false"):
        return token.lower() == "true"
    try:
        return Decimal(token)
    except InvalidOperation:
        raise _parse_error(f"Encountered {token!r}, expecting a value") from None


def field_value(row: dict[str, Any], name: str) -> Any:
    """A (dotted, case-insensitive) field of an entity; references and email addresses
    compare by their `value` / `Address`, as in `PrimaryEmailAddr = 'a@b.c'`."""
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        key = next((k for k in value if k.casefold() == part.casefold()), None)
        value = value.get(key) if key is not None else None
    if isinstance(value, dict):
        value = value.get("Address", value.get("value"))
    return value


def _norm(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    return str(value).casefold()


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "IN":
        return any(_compare(actual, "=", v) for v in expected)
    if op == "LIKE":
        pattern = "".join(".*" if c == "%" else re.escape(c) for c in str(expected))
        return actual is not None and re.fullmatch(pattern, str(actual), re.I | re.S) is not None
    a, b = _norm(actual), _norm(expected)
    if isinstance(b, Decimal) and isinstance(a, str):
        try:
            a = Decimal(a)
        except InvalidOperation:
            return False
    if a is None:
        return False
    try:
        return bool(_OPS[op](a, b))
    except TypeError:
        return False


def _sort_key(value: Any) -> tuple[int, Any]:
    norm = _norm(value)
    if norm is None:
        return (0, "")
    return (1, norm) if isinstance(norm, Decimal) else (2, str(norm))
