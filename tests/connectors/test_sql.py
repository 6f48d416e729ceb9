"""The sql connector against real SQLite files, through SQLAlchemy and through stdlib sqlite3."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from flowkit.connectors import sql as sql_module
from flowkit.connectors.base import CallContext, ConnectorError, ErrorKind
from flowkit.connectors.sql import SqlSettings, check_read_only, connector, scan

Call = Callable[..., CallContext]


def make_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(
        """
        PRAGMA synchronous = OFF;
        CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, price NUMERIC,
                            note TEXT, blob BLOB, seen DATE);
        INSERT INTO stock VALUES ('A-1', 7, 9.5, 'a:b :x', x'00ff', '2024-05-01');
        INSERT INTO stock VALUES ('B-2', 0, 12, NULL, NULL, NULL);
        INSERT INTO stock VALUES ('C-3', 3, 1.25, 'it''s', NULL, NULL);
        """
    )
    con.commit()
    con.close()


@pytest.fixture(params=["sqlalchemy", "sqlite3"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite3":
        monkeypatch.setattr(sql_module, "_load_sqlalchemy", lambda: None)
    return str(request.param)


@pytest.fixture
async def db(runtime: Any, tmp_path: Path, backend: str) -> AsyncIterator[Any]:
    make_db(tmp_path / "shop.db")
    session = await connector.open(SqlSettings(url="sqlite:///shop.db"), runtime)
    yield session
    await connector.close(session)


async def query(session: Any, call: Call, sql: str, **params: Any) -> Any:
    action = connector.actions["query"]
    return await action.run(session, action.Input.model_validate({"sql": sql, "params": params}),
                            call())  # fmt: skip


async def execute(session: Any, call: Call, sql: str, params: Any = None) -> Any:
    action = connector.actions["execute"]
    fields: dict[str, Any] = {"sql": sql}
    if params is not None:
        fields["params"] = params
    return await action.run(session, action.Input.model_validate(fields), call())


async def test_query_with_named_parameters_returns_json_friendly_rows(
    db: Any, call: Call, backend: str
) -> None:
    out = await query(
        db, call, "SELECT sku, qty, price, note, blob FROM stock WHERE qty >= :min ORDER BY sku",
        min=1,
    )  # fmt: skip
    assert out.count == 2
    assert out.items == [
        {"sku": "A-1", "qty": 7, "price": 9.5, "note": "a:b :x", "blob": "00ff"},
        {"sku": "C-3", "qty": 3, "price": 1.25, "note": "it's", "blob": None},
    ]
    assert isinstance(db, sql_module.AlchemyBackend if backend == "sqlalchemy" else
                      sql_module.SqliteBackend)  # fmt: skip


async def test_colons_inside_literals_are_not_parameters(db: Any, call: Call) -> None:
    out = await query(
        db, call,
        "SELECT sku FROM stock WHERE note = 'a:b :x' -- a :comment\n AND sku <> :skip",
        skip="Z",
    )  # fmt: skip
    assert out.items == [{"sku": "A-1"}]


async def test_parameter_values_are_never_interpolated(db: Any, call: Call) -> None:
    out = await query(db, call, "SELECT sku FROM stock WHERE sku = :sku", sku="A-1' OR '1'='1")
    assert out.items == []


async def test_with_statement_is_a_read(db: Any, call: Call) -> None:
    out = await query(
        db, call,
        "WITH low AS (SELECT sku FROM stock WHERE qty < :n) SELECT count(*) AS c FROM low", n=5,
    )  # fmt: skip
    assert out.items == [{"c": 2}]


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM stock", "only runs SELECT or WITH statements, not DELETE"),
        ("UPDATE stock SET qty = 0", "not UPDATE"),
        ("SELECT 1; DELETE FROM stock", "exactly one statement, this has 2"),
        ("WITH x AS (SELECT 1) DELETE FROM stock", "contains DELETE"),
        ("WITH x AS (SELECT 1) INSERT INTO stock(sku, qty) SELECT 'Z', 1", "INSERT, INTO"),
        ("SELECT * INTO backup FROM stock", "contains INTO"),
        ("PRAGMA table_info(stock)", "not PRAGMA"),
        ("  ", "this has 0"),
        ("SELECT 'unclosed", "quote is not closed"),
        ("SELECT 1 /* open", "comment is not closed"),
    ],
)
async def test_query_refuses_anything_but_one_select(
    db: Any, call: Call, tmp_path: Path, statement: str, message: str
) -> None:
    with pytest.raises(ConnectorError, match=message) as caught:
        await query(db, call, statement)
    assert caught.value.kind is ErrorKind.VALIDATION
    out = await query(db, call, "SELECT count(*) AS n FROM stock")
    assert out.items == [{"n": 3}]


def test_read_only_check_ignores_keywords_in_literals_comments_and_names() -> None:
    check_read_only("SELECT 'DELETE FROM x' AS s, update_date FROM t -- DROP TABLE t")
    check_read_only('SELECT "insert" FROM t /* UPDATE */;')
    assert scan("SELECT :a, :b, :a, x::text FROM t WHERE y = ':c'").params == ("a", "b")


async def test_query_connection_is_read_only_even_past_the_keyword_check(
    db: Any, call: Call
) -> None:
    # defence in depth: the backend itself refuses writes during `query` (PRAGMA query_only)
    with pytest.raises(ConnectorError, match="readonly database") as caught:
        db.query("DELETE FROM stock", {})
    assert caught.value.kind is ErrorKind.VALIDATION
    out = await query(db, call, "SELECT count(*) AS n FROM stock")
    assert out.items == [{"n": 3}]
    assert (await execute(db, call, "DELETE FROM stock WHERE sku = 'C-3'")).rowcount == 1


async def test_missing_parameter_is_named(db: Any, call: Call) -> None:
    with pytest.raises(ConnectorError, match=r"no value for :min in `params`") as caught:
        await query(db, call, "SELECT sku FROM stock WHERE qty >= :min")
    assert caught.value.kind is ErrorKind.VALIDATION


async def test_unknown_table_is_a_validation_error(db: Any, call: Call) -> None:
    with pytest.raises(ConnectorError, match="no such table: nope") as caught:
        await query(db, call, "SELECT * FROM nope")
    assert caught.value.kind is ErrorKind.VALIDATION
    assert "SELECT" not in str(caught.value)  # the SQL and parameters are not echoed


async def test_execute_single_and_many_in_one_transaction(
    db: Any, call: Call, tmp_path: Path
) -> None:
    out = await execute(db, call, "UPDATE stock SET qty = :qty WHERE sku = :sku",
                        {"sku": "B-2", "qty": 5})  # fmt: skip
    assert out.rowcount == 1
    out = await execute(
        db, call, "INSERT INTO stock (sku, qty) VALUES (:sku, :qty)",
        [{"sku": "D-4", "qty": 1}, {"sku": "E-5", "qty": 2}],
    )  # fmt: skip
    assert out.rowcount == 2
    assert (await execute(db, call, "DELETE FROM stock WHERE sku = 'none'", [])).rowcount == 0
    con = sqlite3.connect(tmp_path / "shop.db")
    rows = con.execute("SELECT sku, qty FROM stock ORDER BY sku").fetchall()
    con.close()
    assert rows == [("A-1", 7), ("B-2", 5), ("C-3", 3), ("D-4", 1), ("E-5", 2)]


async def test_execute_failure_rolls_back_every_parameter_set(
    db: Any, call: Call, tmp_path: Path
) -> None:
    with pytest.raises(ConnectorError, match="UNIQUE constraint failed") as caught:
        await execute(
            db, call, "INSERT INTO stock (sku, qty) VALUES (:sku, :qty)",
            [{"sku": "F-6", "qty": 1}, {"sku": "A-1", "qty": 2}],
        )  # fmt: skip
    assert caught.value.kind is ErrorKind.CONFLICT
    assert caught.value.maybe_sent is False
    out = await query(db, call, "SELECT count(*) AS n FROM stock WHERE sku = 'F-6'")
    assert out.items == [{"n": 0}]


async def test_execute_refuses_several_statements_and_missing_params(db: Any, call: Call) -> None:
    with pytest.raises(ConnectorError, match="exactly one statement, this has 2"):
        await execute(db, call, "DELETE FROM stock; DROP TABLE stock")
    with pytest.raises(ConnectorError, match=r"no value for :qty in parameter set 2"):
        await execute(db, call, "UPDATE stock SET qty = :qty WHERE sku = :sku",
                      [{"sku": "A", "qty": 1}, {"sku": "B"}])  # fmt: skip


async def test_locked_database_is_transient(db: Any, call: Call, tmp_path: Path) -> None:
    blocker = sqlite3.connect(tmp_path / "shop.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ConnectorError) as caught:
            await _execute_nowait(db, call)
        assert caught.value.kind is ErrorKind.TRANSIENT
        assert "locked" in str(caught.value)
    finally:
        blocker.rollback()
        blocker.close()


async def _execute_nowait(session: Any, call: Call) -> Any:
    """Lower the connection's busy timeout to 0 so a lock fails fast, then write."""
    if isinstance(session, sql_module.SqliteBackend):
        session._con.execute("PRAGMA busy_timeout = 0")
    else:
        from sqlalchemy import event

        event.listen(
            session.engine, "connect",
            lambda dbapi_con, _record: dbapi_con.execute("PRAGMA busy_timeout = 0"),
        )  # fmt: skip
        session.engine.dispose()
    return await execute(session, call, "UPDATE stock SET qty = 1 WHERE sku = 'A-1'")


async def test_relative_url_resolves_against_the_recipe_folder_and_absolute_is_kept(
    runtime: Any, call: Call, tmp_path: Path, backend: str
) -> None:
    (tmp_path / "data").mkdir()
    make_db(tmp_path / "data" / "rel.db")
    for url in ["sqlite:///data/rel.db", f"sqlite:///{tmp_path / 'data' / 'rel.db'}"]:
        session = await connector.open(SqlSettings(url=url), runtime)
        try:
            out = await query(session, call, "SELECT count(*) AS n FROM stock")
        finally:
            await connector.close(session)
        assert out.items == [{"n": 3}]


async def test_in_memory_database_is_shared_between_calls(
    runtime: Any, call: Call, backend: str
) -> None:
    session = await connector.open(SqlSettings(url="sqlite://"), runtime)
    try:
        await execute(session, call, "CREATE TABLE t (a INTEGER)")
        await execute(session, call, "INSERT INTO t VALUES (:a)", [{"a": 1}, {"a": 2}])
        out = await query(session, call, "SELECT sum(a) AS s FROM t")
    finally:
        await connector.close(session)
    assert out.items == [{"s": 3}]


async def test_password_in_the_url_is_registered_as_a_secret(runtime: Any) -> None:
    with pytest.raises(ConnectorError) as caught:
        await connector.open(
            SqlSettings(url="nosuchdb+driver://shop:hunter2-pass@db.example/shop"), runtime
        )
    assert runtime.secrets == ["hunter2-pass"]
    assert "hunter2-pass" not in str(caught.value)
    assert caught.value.kind is ErrorKind.VALIDATION


async def test_without_sqlalchemy_only_sqlite_works(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "_load_sqlalchemy", lambda: None)
    with pytest.raises(ConnectorError) as caught:
        await connector.open(SqlSettings(url="postgresql://u:p%40ss-word@h/db"), runtime)
    assert str(caught.value) == (
        "sql: 'postgresql://u:***@h/db' needs SQLAlchemy; only sqlite: URLs work without it"
    )
    assert caught.value.hint == "install the extra: pip install 'flowkit[sql]'"
    assert runtime.secrets == ["p@ss-word"]


def test_declared_effects() -> None:
    assert connector.actions["query"].effect.value == "read"
    assert connector.actions["execute"].effect.value == "write"
    assert connector.actions["execute"].retry_safe is False
