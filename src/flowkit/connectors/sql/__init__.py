"""The `sql` connector: parameterised queries and statements against a SQL database.

The connection is a SQLAlchemy URL (`sqlite:///stock.db`, `postgresql+psycopg://…`). A
relative SQLite path resolves against the recipe's folder. With SQLAlchemy installed (the
`flowkit[sql]` extra) any dialect it supports works; without it, `sqlite:` URLs still work
through the standard library's `sqlite3`. A password in the URL is registered as a secret at
`open`, so it is masked in every output.

Values only ever travel as bound parameters (`:name` placeholders with a `params` mapping);
flowkit never builds SQL by string interpolation. `query` is a READ and accepts exactly one
`SELECT` or `WITH` statement without data-changing keywords; it runs in a transaction that is
rolled back (and, on SQLite, with `PRAGMA query_only`), so it cannot change data. `execute` runs
one statement, once or once per parameter set (a list), in one transaction, and is not
idempotent (repeating an INSERT inserts again: make statements idempotent yourself with
`INSERT … ON CONFLICT DO UPDATE` or a natural key if the step may be repeated).

Row values are made JSON-friendly: dates and times become ISO 8601 strings, `Decimal` an int
when integral else a float, bytes a hex string, anything else unknown its `str()`.

Blocking driver calls run in a worker thread.

Layout: `models` (settings, inputs, outputs), `statements` (scanning SQL text, the read-only
check), this module (values, errors, backends, the actions and the `connector` object).

References: https://docs.sqlalchemy.org/en/20/core/connections.html (Connection.execute,
`engine.begin()`, executemany with a list of parameter sets),
https://docs.sqlalchemy.org/en/20/core/sqlelement.html#sqlalchemy.sql.expression.text
(`:name` binds, `\\:` escapes a colon), https://docs.sqlalchemy.org/en/20/dialects/sqlite.html
(pysqlite URLs, threading/pooling), https://docs.python.org/3/library/sqlite3.html,
https://peps.python.org/pep-0249/#exceptions (the DB-API error classes classified below).
"""

from __future__ import annotations

import datetime
import decimal
import sqlite3
import threading
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    ConnectorError,
    Effect,
    ErrorKind,
    Idempotency,
    Runtime,
    to_thread,
)
from flowkit.connectors.sql.models import (
    ExecuteInput,
    ExecuteOutput,
    QueryInput,
    QueryOutput,
    SqlSettings,
)
from flowkit.connectors.sql.statements import _check_params, _invalid, check_read_only, scan

__all__ = ["SqlSettings", "check_read_only", "connector"]


# --- values and errors ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _classify(exc: BaseException, *, sqlite: bool, committing: bool) -> ConnectorError:
    """A DB-API exception (PEP 249 class names) as a ConnectorError."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = message.lower()
    kind = ErrorKind.PERMANENT
    if "IntegrityError" in names:
        kind = ErrorKind.CONFLICT
    elif "OperationalError" in names:
        if "locked" in lowered or "busy" in lowered:
            kind = ErrorKind.TRANSIENT
        elif sqlite and "unable to open" not in lowered and "disk i/o" not in lowered:
            kind = ErrorKind.VALIDATION  # sqlite3 reports syntax errors and unknown tables here
        elif not sqlite:
            kind = ErrorKind.TRANSIENT  # server databases: lost or refused connections
    elif names & {"ProgrammingError", "DataError", "NotSupportedError"}:
        kind = ErrorKind.VALIDATION
    elif "InterfaceError" in names:
        kind = ErrorKind.TRANSIENT
    maybe_sent = committing and kind is ErrorKind.TRANSIENT
    return ConnectorError(f"sql: {message}", kind=kind, maybe_sent=maybe_sent)


# --- backends ---------------------------------------------------------------------------------


class Backend(Protocol):
    sqlite: bool

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, params: list[dict[str, Any]]) -> int: ...

    def close(self) -> None: ...


def _load_sqlalchemy() -> ModuleType | None:
    """SQLAlchemy if it is installed (the `flowkit[sql]` extra), else None."""
    try:
        import sqlalchemy
    except ImportError:
        return None
    return sqlalchemy


class AlchemyBackend:
    """Any database SQLAlchemy 2 supports."""

    def __init__(self, sa: ModuleType, url: Any) -> None:
        from sqlalchemy.pool import StaticPool

        self._sa = sa
        self.sqlite = url.get_backend_name() == "sqlite"
        options: dict[str, Any] = {}
        if self.sqlite:
            options["connect_args"] = {"check_same_thread": False}
            if url.database in (None, "", ":memory:"):
                options["poolclass"] = StaticPool  # one shared in-memory database
        try:
            self.engine = sa.create_engine(url, **options)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise _invalid(
                f"sql: no database driver for '{url.drivername}': {exc}",
                hint="install the driver package for this database (e.g. psycopg, pymysql)",
            ) from exc
        except sa.exc.ArgumentError as exc:
            raise _invalid(f"sql: invalid database URL: {exc}") from exc

    def _error(self, exc: Exception, committing: bool = False) -> ConnectorError:
        sa = self._sa
        if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
            err = _classify(exc.orig, sqlite=self.sqlite, committing=committing)
            if exc.connection_invalidated and err.kind is not ErrorKind.TRANSIENT:
                err.kind = ErrorKind.TRANSIENT
                err.maybe_sent = committing
            return err
        if isinstance(exc, sa.exc.StatementError | sa.exc.ArgumentError):
            return _invalid(f"sql: {str(exc).splitlines()[0]}")
        return ConnectorError(f"sql: {str(exc).splitlines()[0]}", kind=ErrorKind.PERMANENT)

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        text = self._sa.text(sql)
        try:
            with self.engine.connect() as conn:
                if self.sqlite:
                    conn.exec_driver_sql("PRAGMA query_only = ON")
                try:
                    result = conn.execute(text, params)
                    columns = list(result.keys())
                    rows = [
                        {c: _jsonable(v) for c, v in zip(columns, row, strict=True)}
                        for row in result
                    ]
                finally:
                    conn.rollback()
                    if self.sqlite:
                        conn.exec_driver_sql("PRAGMA query_only = OFF")
                        conn.rollback()
        except self._sa.exc.SQLAlchemyError as exc:
            raise self._error(exc) from exc
        return rows

    def execute(self, sql: str, params: list[dict[str, Any]]) -> int:
        text = self._sa.text(sql)
        committing = False
        try:
            with self.engine.connect() as conn:
                result = conn.execute(text, params if len(params) > 1 else params[0])
                count = int(result.rowcount)
                committing = True
                conn.commit()
        except self._sa.exc.SQLAlchemyError as exc:
            raise self._error(exc, committing) from exc
        return count

    def close(self) -> None:
        self.engine.dispose()


class SqliteBackend:
    """The standard library's sqlite3, for `sqlite:` URLs when SQLAlchemy is not installed."""

    sqlite = True

    def __init__(self, target: str, uri: bool) -> None:
        self._lock = threading.Lock()
        try:
            self._con = sqlite3.connect(target, uri=uri, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _classify(exc, sqlite=True, committing=False) from exc

    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            try:
                self._con.execute("PRAGMA query_only = ON")
                try:
                    cursor = self._con.execute(sql, params)
                    columns = [d[0] for d in cursor.description or ()]
                    return [
                        {c: _jsonable(v) for c, v in zip(columns, row, strict=True)}
                        for row in cursor
                    ]
                finally:
                    self._con.rollback()
                    self._con.execute("PRAGMA query_only = OFF")
            except sqlite3.Error as exc:
                raise _classify(exc, sqlite=True, committing=False) from exc

    def execute(self, sql: str, params: list[dict[str, Any]]) -> int:
        with self._lock:
            committing = False
            try:
                if len(params) > 1:
                    cursor = self._con.executemany(sql, params)
                else:
                    cursor = self._con.execute(sql, params[0])
                count = cursor.rowcount
                committing = True
                self._con.commit()
                return count
            except sqlite3.Error as exc:
                self._con.rollback()
                raise _classify(exc, sqlite=True, committing=committing) from exc

    def close(self) -> None:
        self._con.close()


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _sqlite_target(database: str | None, query: dict[str, str], base: Path) -> tuple[str, bool]:
    """The sqlite3.connect() target for a sqlite URL's database part and query options."""
    if database in (None, "", ":memory:"):
        return ":memory:", False
    path = Path(database)
    if not path.is_absolute():
        path = base / path
    if query:
        return f"file:{quote(str(path))}?{urlencode(query)}", True
    return str(path), False


def _open_backend(url: str, base: Path, register: Any) -> Backend:
    sa = _load_sqlalchemy()
    if sa is not None:
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise _invalid(f"sql: invalid database URL '{_masked(url)}'") from None
        if parsed.password:
            register(str(parsed.password))
        database = parsed.database
        if (
            parsed.get_backend_name() == "sqlite"
            and database not in (None, "", ":memory:")
            and not database.startswith("file:")
            and not Path(database).is_absolute()
        ):
            parsed = parsed.set(database=str(base / database))
        return AlchemyBackend(sa, parsed)
    parts = urlsplit(url)
    if parts.password:
        register(unquote(parts.password))
    scheme = parts.scheme.split("+", 1)[0]
    if scheme != "sqlite":
        raise _invalid(
            f"sql: '{_masked(url)}' needs SQLAlchemy; only sqlite: URLs work without it",
            hint="install the extra: pip install 'flowkit[sql]'",
        )
    # sqlite:///relative.db -> path "/relative.db"; sqlite:////abs.db -> "//abs.db"
    database = parts.path[1:] if parts.path.startswith("/") else parts.path
    target, uri = _sqlite_target(database, dict(parse_qsl(parts.query)), base)
    return SqliteBackend(target, uri)


async def _open(settings: SqlSettings, runtime: Runtime) -> Backend:
    return await to_thread(
        _open_backend, settings.url, Path(runtime.base_dir), runtime.register_secret
    )


async def _close(backend: Backend) -> None:
    await to_thread(backend.close)


# --- actions ----------------------------------------------------------------------------------


class Query(Action[QueryInput, QueryOutput]):
    name = "query"
    description = "Run one read-only SELECT with bound parameters and return the rows."
    effect = Effect.READ
    Input = QueryInput
    Output = QueryOutput

    async def run(self, session: Backend, input: QueryInput, call: CallContext) -> QueryOutput:
        found = check_read_only(input.sql)
        _check_params(found, [input.params])
        sql = found.escaped if isinstance(session, AlchemyBackend) else input.sql
        rows = await to_thread(session.query, sql, dict(input.params))
        return QueryOutput(items=rows, count=len(rows))


class Execute(Action[ExecuteInput, ExecuteOutput]):
    name = "execute"
    description = "Run one statement with bound parameters (once, or once per parameter set)."
    effect = Effect.WRITE
    idempotency = Idempotency.NONE
    Input = ExecuteInput
    Output = ExecuteOutput

    async def run(self, session: Backend, input: ExecuteInput, call: CallContext) -> ExecuteOutput:
        found = scan(input.sql)
        if found.statements != 1:
            raise _invalid(
                f"sql: `execute` runs exactly one statement, this has {found.statements}",
                hint="use one step per statement",
            )
        params = (
            [dict(p) for p in input.params]
            if isinstance(input.params, list)
            else [dict(input.params)]
        )
        if not params:
            return ExecuteOutput(rowcount=0)
        _check_params(found, params)
        sql = found.escaped if isinstance(session, AlchemyBackend) else input.sql
        count = await to_thread(session.execute, sql, params)
        return ExecuteOutput(rowcount=count)


connector = Connector(
    "sql",
    description="Parameterised SQL queries and statements (SQLite built in; others via "
    "SQLAlchemy).",
    settings=SqlSettings,
    actions=[Query(), Execute()],
    open=_open,
    close=_close,
    docs_url="https://docs.sqlalchemy.org/en/20/core/engines.html#database-urls",
)
