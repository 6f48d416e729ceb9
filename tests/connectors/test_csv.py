"""The csv connector on real files in tmp_path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flowkit.connectors.base import CallContext, ConnectorError, ErrorKind
from flowkit.connectors.csv import CsvSettings, connector

Call = Callable[..., CallContext]


async def run(runtime: Any, call: Call, action: str, settings: dict[str, Any] | None = None,
              **fields: Any) -> Any:  # fmt: skip
    session = await connector.open(CsvSettings.model_validate(settings or {}), runtime)
    act = connector.actions[action]
    return await act.run(session, act.Input.model_validate(fields), call())


async def test_read_returns_rows_keyed_by_header_with_numeric_columns(
    runtime: Any, call: Call, tmp_path: Path
) -> None:
    (tmp_path / "stock.csv").write_text(
        "\ufeffsku , qty,price,name\r\n"
        "A-1,7,9.50,Mug\r\n"
        "\r\n"
        'B-2,-3,1e2,"Tea, green"\r\n'
        'C-3,,,"multi\nline"\r\n',
        encoding="utf-8",
    )
    out = await run(
        runtime, call, "read", path="stock.csv", key_column="sku", numeric=["qty", "price"]
    )
    assert out.count == 3
    assert out.items == [
        {"sku": "A-1", "qty": 7, "price": 9.5, "name": "Mug"},
        {"sku": "B-2", "qty": -3, "price": 100.0, "name": "Tea, green"},
        {"sku": "C-3", "qty": None, "price": None, "name": "multi\nline"},
    ]


async def test_read_with_settings_base_dir_delimiter_and_encoding(
    runtime: Any, call: Call, tmp_path: Path
) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "s.csv").write_bytes("sku;name\nA;Müsli\n".encode("latin-1"))
    out = await run(
        runtime, call, "read",
        {"base_dir": "exports", "delimiter": ";", "encoding": "latin-1"}, path="s.csv",
    )  # fmt: skip
    assert out.items == [{"sku": "A", "name": "Müsli"}]


async def test_read_empty_file_has_no_rows(runtime: Any, call: Call, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    out = await run(runtime, call, "read", path="empty.csv")
    assert (out.items, out.count) == ([], 0)


@pytest.mark.parametrize(
    ("content", "fields", "message", "kind"),
    [
        ("sku,qty\nA,1\nB,2,3\n", {}, "bad.csv:3: the row has 3 fields, the header has 2",
         ErrorKind.VALIDATION),
        ("sku,qty\nA,1\nB\n", {}, "bad.csv:3: the row has 1 fields, the header has 2",
         ErrorKind.VALIDATION),
        ('sku,qty\nA,"1\n', {}, "bad.csv:2: malformed CSV: unexpected end of data",
         ErrorKind.VALIDATION),
        ('sku,qty\nA,"1"x\n', {}, "bad.csv:2: malformed CSV: ',' expected after '\"'",
         ErrorKind.VALIDATION),
        ("sku,qty\nA,1\nB,seven\n", {"numeric": ["qty"]},
         "bad.csv:3: column 'qty' is not a number: 'seven'", ErrorKind.VALIDATION),
        ("sku,qty\nA,1\nA,2\n", {"key_column": "sku"},
         "bad.csv:3: duplicate sku 'A' (first on line 2)", ErrorKind.VALIDATION),
        ("sku,qty\n,1\n", {"key_column": "sku"}, "bad.csv:2: empty key column 'sku'",
         ErrorKind.VALIDATION),
        ("sku,qty\nA,1\n", {"key_column": "SKU"}, "bad.csv:1: no column 'SKU' (columns: sku, qty)",
         ErrorKind.VALIDATION),
        ("sku,sku\nA,1\n", {}, "bad.csv:1: the header names column 'sku' twice",
         ErrorKind.VALIDATION),
        ("sku,,qty\nA,1,2\n", {}, "bad.csv:1: column 2 of the header has no name",
         ErrorKind.VALIDATION),
        ("x,1,5\n", {"numeric": ["1,5"]}, "bad.csv:1: no column '1,5'", ErrorKind.VALIDATION),
    ],
)  # fmt: skip
async def test_malformed_files_name_file_and_line(
    runtime: Any,
    call: Call,
    tmp_path: Path,
    content: str,
    fields: dict[str, Any],
    message: str,
    kind: ErrorKind,
) -> None:
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(ConnectorError) as caught:
        await run(runtime, call, "read", path="bad.csv", **fields)
    assert str(caught.value).startswith(message)
    assert caught.value.kind is kind


async def test_missing_file_and_bad_encoding(runtime: Any, call: Call, tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"^nope.csv: no such file") as caught:
        await run(runtime, call, "read", path="nope.csv")
    assert caught.value.kind is ErrorKind.NOT_FOUND
    (tmp_path / "latin.csv").write_bytes(b"sku\n\xe9\n")
    with pytest.raises(ConnectorError, match=r"^latin.csv: not valid text") as caught:
        await run(runtime, call, "read", path="latin.csv")
    assert caught.value.kind is ErrorKind.VALIDATION


def test_settings_reject_unknown_encoding_and_long_delimiter() -> None:
    with pytest.raises(ValidationError, match="unknown encoding 'utf-99'"):
        CsvSettings(encoding="utf-99")
    with pytest.raises(ValidationError, match="at most 1 character"):
        CsvSettings(delimiter=";;")


async def test_write_replaces_the_file_atomically_and_is_repeatable(
    runtime: Any, call: Call, tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old,content\n1,2\n")
    rows = [
        {"sku": "A", "qty": 1, "ok": True, "tags": ["x"]},
        {"sku": "B", "qty": None, "note": "has, comma"},
    ]
    out = await run(runtime, call, "write", path="out.csv", rows=rows)
    assert out.count == 2 and out.path == str(target)
    expected = 'sku,qty,ok,tags,note\r\nA,1,true,"[""x""]",\r\nB,,,,"has, comma"\r\n'
    assert target.read_bytes().decode() == expected
    await run(runtime, call, "write", path="out.csv", rows=rows)
    assert target.read_bytes().decode() == expected  # same request, same file
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind
    back = await run(runtime, call, "read", path="out.csv")
    assert back.items[1] == {"sku": "B", "qty": "", "ok": "", "tags": "", "note": "has, comma"}


async def test_write_with_columns_refuses_unknown_keys_and_keeps_the_old_file(
    runtime: Any, call: Call, tmp_path: Path
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("keep\n")
    with pytest.raises(ConnectorError, match="row 2 has keys that are not columns: extra"):
        await run(
            runtime, call, "write", path="out.csv", columns=["sku"],
            rows=[{"sku": "A"}, {"sku": "B", "extra": 1}],
        )  # fmt: skip
    assert target.read_text() == "keep\n"
    await run(runtime, call, "write", path="out.csv", columns=["qty", "sku"], rows=[{"sku": "A"}])
    assert target.read_bytes().decode() == "qty,sku\r\n,A\r\n"


async def test_write_into_a_missing_folder_names_it(runtime: Any, call: Call) -> None:
    with pytest.raises(ConnectorError, match=r"^no/such/out.csv: no such file") as caught:
        await run(runtime, call, "write", path="no/such/out.csv", rows=[{"a": 1}])
    assert caught.value.kind is ErrorKind.NOT_FOUND


async def test_append_creates_with_header_then_appends_using_the_files_header(
    runtime: Any, call: Call, tmp_path: Path
) -> None:
    await run(runtime, call, "append", path="log.csv", rows=[{"sku": "A", "qty": 1}])
    await run(runtime, call, "append", path="log.csv", rows=[{"qty": 2, "sku": "B"}, {"sku": "C"}])
    assert (tmp_path / "log.csv").read_bytes().decode() == "sku,qty\r\nA,1\r\nB,2\r\nC,\r\n"
    with pytest.raises(ConnectorError, match="differ from the file's header"):
        await run(runtime, call, "append", path="log.csv", columns=["qty", "sku"], rows=[])
    with pytest.raises(ConnectorError, match="row 1 has keys that are not columns: colour"):
        await run(runtime, call, "append", path="log.csv", rows=[{"sku": "D", "colour": "red"}])


async def test_append_to_a_file_without_final_newline(
    runtime: Any, call: Call, tmp_path: Path
) -> None:
    (tmp_path / "log.csv").write_text("sku,qty\nA,1")
    await run(runtime, call, "append", path="log.csv", rows=[{"sku": "B", "qty": 2}])
    out = await run(runtime, call, "read", path="log.csv")
    assert out.items == [{"sku": "A", "qty": "1"}, {"sku": "B", "qty": "2"}]


async def test_concurrent_appends_do_not_interleave(
    runtime: Any, call: Call, tmp_path: Path
) -> None:
    session = await connector.open(CsvSettings(), runtime)
    append = connector.actions["append"]
    await asyncio.gather(
        *(
            append.run(
                session,
                append.Input.model_validate(
                    {"path": "log.csv", "rows": [{"n": i, "text": "x" * 2000}] * 5}
                ),
                call(),
            )
            for i in range(20)
        )
    )
    out = await run(runtime, call, "read", path="log.csv", numeric=["n"])
    assert out.count == 100
    assert sorted(row["n"] for row in out.items) == sorted(list(range(20)) * 5)


def test_declared_effects() -> None:
    actions = connector.actions
    assert (actions["read"].effect.value, actions["read"].retry_safe) == ("read", True)
    assert (actions["write"].idempotency.value, actions["write"].retry_safe) == ("natural", True)
    assert (actions["append"].idempotency.value, actions["append"].retry_safe) == ("none", False)
