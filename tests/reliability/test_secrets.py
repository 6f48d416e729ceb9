"""Masking: a known secret never appears in any output, log, history or the state database.

The secret is used where it is most likely to escape: the connection's `Authorization`
header, a step input, an answer that echoes both back (which becomes the step's journaled
output), and an error message that quotes them (which becomes the item's error). Every run
mode is exercised (text and JSON logs, --dry-run, --debug, a failing run and a run killed
mid-way, which leaves its WAL behind), and every place flowkit writes is searched for the
secret and for its encodings: URL-encoded, JSON-escaped and base64 at every alignment
(an `Authorization: Basic` header, for example, would carry it base64-encoded after a prefix).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import textwrap
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from .conftest import Flowkit, Result, Shop, World, integrity, store_rows

SECRET = "sk_live_SUPER+SECRET/VALUE123"  # `+` and `/` make the URL-encoded form differ
RECIPE = "secret-orders"


def encodings(secret: str) -> dict[str, bytes]:
    """Byte patterns that reveal `secret`: raw, URL-encoded, JSON-escaped, UTF-16, and base64
    at each of the three alignments it can have inside a longer encoded string (only the
    characters that depend on the secret's bytes alone are kept)."""
    raw = secret.encode()
    forms = {
        "raw": raw,
        "url": quote(secret, safe="").encode(),
        "url_path": quote(secret).encode(),  # `/` left as is, as in a URL path
        "url_plus": quote_plus(secret).encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "utf16": secret.encode("utf-16-le"),
    }
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        start = -(-offset * 8 // 6)  # first character made of secret bits only
        end = (offset + len(raw)) * 8 // 6  # past the last such character
        forms[f"base64+{offset}"] = encoded[start:end]
    return forms


PATTERNS = encodings(SECRET)


def leaks(label: str, data: bytes) -> list[str]:
    return [f"{label}: {name}" for name, pattern in PATTERNS.items() if pattern in data]


def test_the_encodings_catch_an_embedded_secret() -> None:
    # the checker itself must find the secret wherever and however it is embedded
    for prefix in (b"", b"u", b"us", b"user:"):
        blob = base64.b64encode(prefix + SECRET.encode() + b":x")
        assert any(p in blob for k, p in PATTERNS.items() if k.startswith("base64")), prefix
    assert leaks("t", quote(f"a={SECRET}").encode())
    assert leaks("t", json.dumps({"a": SECRET}).encode())
    assert not leaks("t", b"sk_live_*** Bearer ***")


def secret_recipe(world: World, *, fail: bool) -> str:
    return textwrap.dedent(f"""\
        flowkit: 1
        name: {RECIPE}
        secrets:
          SHOP_TOKEN: {{description: the shop's API key}}
        connections:
          shop:
            connector: http
            with:
              base_url: "{world.url}"
              auth: {{type: bearer, token: "${{{{ secrets.SHOP_TOKEN }}}}"}}
              idempotency_header: Idempotency-Key
              headers: {{X-Run-Tag: "${{{{ env.RUN_TAG }}}}"}}
        trigger:
          use: http.list
          connection: shop
          with:
            path: orders
            items_field: data
            cursor: ${{{{ cursor }}}}
            cursor_param: after
            next_cursor_field: next_cursor
          key: ${{{{ item.id }}}}
          cursor: ${{{{ output.cursor }}}}
        steps:
          - id: echo
            use: http.post_idempotent
            connection: shop
            with:
              path: echo
              json:
                order: ${{{{ item.id }}}}
                note: "token is ${{{{ secrets.SHOP_TOKEN }}}} for ${{{{ item.id }}}}"
          - id: reject
            use: http.post
            connection: shop
            if: {"true" if fail else "false"}
            with:
              path: reject
              json: {{note: "${{{{ secrets.SHOP_TOKEN }}}}"}}
        """)


def test_a_known_secret_appears_in_no_output_and_not_in_the_database(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    flowkit.env.update({"SHOP_TOKEN": SECRET, "FLOWKIT_LOG_DIR": str(logs)})
    outputs: list[tuple[str, Result]] = []
    states: list[Path] = []

    def mode(
        name: str, extra_args: list[str], *, fail: bool = False, env: dict[str, str] | None = None
    ) -> tuple[World, Path, Result]:
        world = shop.world(f"secret-{name}", orders=2)
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(secret_recipe(world, fail=fail), encoding="utf-8")
        state = tmp_path / f"{name}.db"
        states.append(state)
        before = [a for a in extra_args if a == "--debug"]
        after = [a for a in extra_args if a != "--debug"]
        result = flowkit.run(
            [*before, "run", str(recipe), "--state", str(state), *after], tag=name, extra=env
        )
        outputs.append((name, result))
        return world, state, result

    world, _, text = mode("text", [])
    assert text.code == 0, text.stdout + text.stderr
    # the server really received the secret, so the test is meaningful
    assert world.sent_by("text")[0].auth == f"Bearer {SECRET}"
    assert any(SECRET in json.dumps(r.body) for r in world.writes("text"))

    _, _, js = mode("json", ["--log-format", "json"])
    assert js.code == 0, js.stderr
    assert '"event":"step"' in js.stdout

    _, dry_state, dry = mode("dry", ["--dry-run"])
    assert dry.code == 0 and "would write" in dry.stdout, dry.stdout
    assert "token is ***" in dry.stdout  # the rendered input is shown, masked

    _, _, debug = mode("debug", ["--debug"], fail=True)
    assert debug.code == 1, debug.stdout + debug.stderr
    assert "POST" in debug.stderr and "-> 400" in debug.stderr  # debug logs every request

    fail_world, fail_state, failing = mode("failing", ["--log-format", "json"], fail=True)
    assert failing.code == 1, failing.stdout + failing.stderr
    assert "HTTP 400" in failing.stdout and "cannot accept note" in failing.stdout
    assert fail_world.writes("failing")[-1].path == "reject"

    # a run killed mid-way leaves its write-ahead log behind: its raw frames are searched too
    _, killed_state, killed = mode("killed", [], env={"FLOWKIT_CRASH_AT": "after_journal:1"})
    assert killed.code == 137
    assert Path(f"{killed_state}-wal").exists()

    # everything a user can read back
    for state, args in (
        (fail_state, ["runs", "show", "last"]),
        (fail_state, ["items", "list"]),
        (fail_state, ["runs", "list"]),
        (killed_state, ["runs", "show", "last"]),
        (states[0], ["items", "list", "--status", "done"]),
    ):
        result = flowkit.run([*args, "--state", str(state)])
        assert result.code == 0, result.stderr
        outputs.append((f"{state.name}: flowkit {' '.join(args)}", result))
    # the failed step and item are listed with their (masked) errors
    assert "HTTP 400" in outputs[-5][1].stdout and "HTTP 400" in outputs[-4][1].stdout

    found: list[str] = []
    for name, result in outputs:
        found += leaks(f"{name} stdout", result.stdout.encode())
        found += leaks(f"{name} stderr", result.stderr.encode())
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            found += leaks(str(path.relative_to(tmp_path)), path.read_bytes())
    assert not found, found
    assert not dry_state.exists()  # the dry run created no store at all
    for state in states:
        if state.exists():
            assert integrity(state) == "ok"
    # and the journal really holds the echoed answer, masked
    conn = sqlite3.connect(states[0])
    try:
        ((output,),) = conn.execute(
            "SELECT output FROM steps WHERE step_key = 'echo' AND item_key = 'ord_000'"
        ).fetchall()
    finally:
        conn.close()
    body = json.loads(output)["body"]
    assert body["echo"]["note"] == "token is *** for ord_000"
    assert body["auth_seen"] == "Bearer ***"


@pytest.mark.parametrize(
    "first",
    [
        "http.post_idempotent",
        "http.get",
        "http.post",
    ],
)
def test_a_resumed_item_never_sends_the_mask_in_place_of_a_value(
    shop: Shop, flowkit: Flowkit, tmp_path: Path, first: str
) -> None:
    """A step's output is journaled masked. When a crash separates it from a later step that
    uses it, the resumed item must send what an uninterrupted run sends, or refuse; never the
    mask `***` in place of the value."""
    world = shop.world(f"secret-resume-{first}", orders=1)
    recipe = tmp_path / "recipe.yaml"
    text = secret_recipe(world, fail=False).split("  - id: reject", 1)[0]
    if first == "http.get":  # a read whose answer carries the secret (the auth header)
        text = text.split("  - id: echo", 1)[0] + (
            "  - id: echo\n    use: http.get\n    connection: shop\n    with: {path: whoami}\n"
        )
        source, expected = "steps.echo.output.body.auth_seen", f"Bearer {SECRET}"
    else:
        text = text.replace("use: http.post_idempotent", f"use: {first}", 1)
        source = "steps.echo.output.body.echo.note"
        expected = f"token is {SECRET} for ord_000"  # what an uninterrupted run sends
    # a second step that sends on what the first one returned
    text += (
        "  - id: again\n"
        "    use: http.post_idempotent\n"
        "    connection: shop\n"
        "    with:\n"
        "      path: echo\n"
        f'      json: {{again: "${{{{ {source} }}}}"}}\n'
    )
    recipe.write_text(text, encoding="utf-8")
    flowkit.env["SHOP_TOKEN"] = SECRET
    state = tmp_path / "state.db"
    args = ["run", str(recipe), "--state", str(state)]
    # the first run dies right after journaling the first step; the second resumes the item
    assert flowkit.run(args, extra={"FLOWKIT_CRASH_AT": "after_journal:1"}).code == 137
    rerun = flowkit.run(args)
    again = [r.body["again"] for r in world.writes() if r.body and "again" in r.body]
    assert "***" not in " ".join(again), again
    if again:
        assert again == [expected]
        assert rerun.code == 0, rerun.stdout + rerun.stderr
    else:  # refusing is acceptable: the item fails and says why
        assert rerun.code == 1, rerun.stdout + rerun.stderr
        assert store_rows(state, "SELECT status FROM items") == [("failed",)]


def test_a_completed_charge_is_not_sent_again_to_recover_a_masked_output(
    shop: Shop, flowkit: Flowkit, tmp_path: Path
) -> None:
    world = shop.world("secret-refetch", orders=1)
    recipe = tmp_path / "recipe.yaml"
    text = secret_recipe(world, fail=False).split("  - id: echo", 1)[0]
    text += (
        "  - id: charge\n"
        "    use: http.post_idempotent\n"
        "    connection: shop\n"
        "    with:\n"
        "      path: charges\n"
        "      json:\n"
        "        order: ${{ item.id }}\n"
        "        amount: ${{ item.amount }}\n"
        '        metadata: {note: "${{ secrets.SHOP_TOKEN }}"}\n'
        "  - id: mark_paid\n"
        "    use: http.put\n"
        "    connection: shop\n"
        "    with:\n"
        "      path: orders/${{ item.id }}/status\n"
        "      json: {status: paid, charge: '${{ steps.charge.output.body.id }}',"
        " note: '${{ steps.charge.output.body.metadata.note }}'}\n"
    )
    recipe.write_text(text, encoding="utf-8")
    flowkit.env["SHOP_TOKEN"] = SECRET
    args = ["run", str(recipe), "--state", str(tmp_path / "state.db")]
    # the charge completes and is journaled (its output, which holds the secret, masked)
    assert flowkit.run(args, extra={"FLOWKIT_CRASH_AT": "after_journal:1"}).code == 137
    assert world.charges_per_order() == {"ord_000": 1}
    world.forget_keys()  # the item is resumed after the provider's key window
    flowkit.run(args)
    assert world.charges_per_order() == {"ord_000": 1}
