"""The Slack incoming-webhook stand-in over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from flowkit.sandbox.server import serve_in_thread
from flowkit.sandbox.slack import DEFAULT_HOOK, SlackSandbox


@pytest.fixture
def slack() -> Iterator[tuple[SlackSandbox, str]]:
    sandbox = SlackSandbox()
    with serve_in_thread(sandbox.app) as handle:
        yield sandbox, sandbox.url(handle.url)


def test_text_and_blocks_are_recorded(slack: tuple[SlackSandbox, str], http: httpx.Client) -> None:
    sandbox, url = slack
    plain = http.post(url, json={"text": "Invoice failed for ch_1"})
    assert (plain.status_code, plain.text) == (200, "ok")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    rich = http.post(url, json={"blocks": blocks})
    assert rich.status_code == 200
    assert [(m.text, m.blocks, m.hook) for m in sandbox.messages] == [
        ("Invoice failed for ch_1", None, DEFAULT_HOOK),
        (None, blocks, DEFAULT_HOOK),
    ]


def test_legacy_form_payload_is_accepted(
    slack: tuple[SlackSandbox, str], http: httpx.Client
) -> None:
    sandbox, url = slack
    response = http.post(url, data={"payload": json.dumps({"text": "from a form"})})
    assert response.text == "ok"
    assert sandbox.messages[0].text == "from a form"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "invalid_payload"),
        (b"[1, 2]", "invalid_payload"),
        (b'{"text": 5}', "invalid_payload"),
        (b'{"blocks": "x"}', "invalid_blocks"),
        (b'{"username": "bot"}', "no_text"),
    ],
)
def test_bad_payloads_are_400(
    slack: tuple[SlackSandbox, str], body: bytes, expected: str, http: httpx.Client
) -> None:
    sandbox, url = slack
    response = http.post(url, content=body, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.text) == (400, expected)
    assert sandbox.messages == []


def test_unknown_hook_is_404_no_service(
    slack: tuple[SlackSandbox, str], http: httpx.Client
) -> None:
    sandbox, url = slack
    wrong = url.replace("sandboxWebhookSecret0001", "revoked")
    response = http.post(wrong, json={"text": "hi"})
    assert (response.status_code, response.text) == (404, "no_service")
    extra = sandbox.add_hook()
    assert (
        http.post(sandbox.url(url.split("/services/")[0], extra), json={"text": "x"}).text == "ok"
    )


def test_rate_limit_knob_answers_429_with_retry_after(
    slack: tuple[SlackSandbox, str], http: httpx.Client
) -> None:
    sandbox, url = slack
    sandbox.fail_next(1, status=429, retry_after=2)
    limited = http.post(url, json={"text": "one"})
    assert (limited.status_code, limited.text) == (429, "rate_limited")
    assert limited.headers["Retry-After"] == "2"
    assert http.post(url, json={"text": "one"}).status_code == 200
    base = url.split("/services/")[0]
    knob = http.post(base + "/_sandbox/faults", json={"fail_next": 1, "fail_status": 500})
    assert knob.json() == {"pending_failures": 1}
    assert http.post(url, json={"text": "two"}).text == "rollup_error"
    assert [m.text for m in sandbox.messages] == ["one"]
    listed = http.get(base + "/_sandbox/messages").json()
    assert [m["text"] for m in listed] == ["one"]
    assert sandbox.summary() == {"messages": 1, "rejected": 2}
