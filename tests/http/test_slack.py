"""The slack connector against a local incoming-webhook server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from aiohttp import web

from flowkit.connectors.base import CallContext, Effect, Idempotency
from flowkit.connectors.slack import SlackSettings, connector, open_session
from flowkit.errors import ConnectorError, ErrorKind

HOOK = "/services/T0001/B0001/abcSECRETxyz"


class Webhook:
    """Answers like Slack: `ok`, or a status with a plain-text error code."""

    def __init__(self) -> None:
        self.payloads: list[Any] = []
        self.queue: list[tuple[int, str, dict[str, str]]] = []
        self.delay = 0.0
        self.app = web.Application()
        self.app.router.add_post("/services/{t}/{b}/{x}", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        if request.path != HOOK:
            return web.Response(status=404, text="no_service")
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.queue:
            status, text, headers = self.queue.pop(0)
            return web.Response(status=status, text=text, headers=headers)
        try:
            payload = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return web.Response(status=400, text="invalid_payload")
        self.payloads.append(payload)
        return web.Response(text="ok")


@pytest.fixture
def hook(serve: Any) -> tuple[Webhook, str]:
    server = Webhook()
    return server, serve(server.app).url


async def post(session: Any, **values: Any) -> Any:
    action = connector.actions["post_message"]
    return await action.run(session, action.Input.model_validate(values), CallContext("fk-1"))


async def open_hook(url: str, runtime: Any, path: str = HOOK, timeout: float = 5.0) -> Any:
    settings = SlackSettings.model_validate({"webhook_url": url + path, "timeout": timeout})
    return await connector.open(settings, runtime)


def test_declaration() -> None:
    action = connector.actions["post_message"]
    assert (action.effect, action.idempotency) == (Effect.NOTIFY, Idempotency.NONE)
    assert action.retry_safe is False


async def test_post_message_ok(hook: tuple[Webhook, str], runtime: Any) -> None:
    server, url = hook
    session = await open_hook(url, runtime)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Invoice* sent"}}]
    try:
        out = await post(
            session,
            text="Invoice sent",
            blocks=blocks,
            username="flowkit",
            icon_emoji=":robot_face:",
        )
    finally:
        await connector.close(session)
    assert (out.ok, out.response) == (True, "ok")
    assert server.payloads == [
        {
            "text": "Invoice sent",
            "blocks": blocks,
            "username": "flowkit",
            "icon_emoji": ":robot_face:",
        }
    ]
    assert url + HOOK in runtime.secrets
    assert runtime.lines and all("SECRET" not in line for line in runtime.lines)
    assert runtime.lines[0].startswith("test: POST *** -> 200 (")


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "invalid_payload", ErrorKind.VALIDATION),
        (403, "action_prohibited", ErrorKind.PERMANENT),
        (403, "invalid_token", ErrorKind.AUTH),
        (404, "channel_not_found", ErrorKind.NOT_FOUND),
        (410, "channel_is_archived", ErrorKind.PERMANENT),
        (500, "rollup_error", ErrorKind.TRANSIENT),
        (503, "service_unavailable", ErrorKind.TRANSIENT),
    ],
)
async def test_slack_errors_keep_the_code(
    hook: tuple[Webhook, str], runtime: Any, status: int, code: str, kind: ErrorKind
) -> None:
    server, url = hook
    server.queue.append((status, code, {}))
    session = await open_hook(url, runtime)
    try:
        with pytest.raises(ConnectorError) as info:
            await post(session, text="hello")
    finally:
        await connector.close(session)
    assert info.value.kind is kind
    assert str(info.value) == f"HTTP {status} from POST ***: {code}"


async def test_rate_limited_with_retry_after(hook: tuple[Webhook, str], runtime: Any) -> None:
    server, url = hook
    server.queue.append((429, "rate_limited", {"Retry-After": "30"}))
    session = await open_hook(url, runtime)
    try:
        with pytest.raises(ConnectorError) as info:
            await post(session, text="hello")
        assert (info.value.kind, info.value.retry_after) == (ErrorKind.RATE_LIMITED, 30.0)
        assert (await post(session, text="again")).ok is True
    finally:
        await connector.close(session)


async def test_revoked_webhook_is_auth_with_hint(hook: tuple[Webhook, str], runtime: Any) -> None:
    _server, url = hook
    session = await open_hook(url, runtime, path="/services/T0001/B0001/revokedSECRET")
    try:
        with pytest.raises(ConnectorError) as info:
            await post(session, text="hello")
    finally:
        await connector.close(session)
    assert info.value.kind is ErrorKind.AUTH
    assert info.value.hint and "new incoming webhook" in info.value.hint
    assert "revokedSECRET" not in str(info.value)


async def test_timeout_is_maybe_sent(hook: tuple[Webhook, str], runtime: Any) -> None:
    server, url = hook
    server.delay = 0.4
    session = await open_hook(url, runtime, timeout=0.1)
    try:
        with pytest.raises(ConnectorError) as info:
            await post(session, text="hello")
    finally:
        await connector.close(session)
    assert info.value.kind is ErrorKind.TIMEOUT and info.value.maybe_sent is True
    assert "SECRET" not in str(info.value)


async def test_invalid_settings_and_input(runtime: Any) -> None:
    with pytest.raises(ConnectorError, match="http\\(s\\) URL"):
        open_session(SlackSettings.model_validate({"webhook_url": "hooks.slack.com/x"}), runtime)
    with pytest.raises(ValueError, match="text"):
        connector.actions["post_message"].Input.model_validate({"text": ""})


async def test_non_ok_body_on_200(runtime: Any) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, text="queued"))
    settings = SlackSettings.model_validate({"webhook_url": "https://hooks.test" + HOOK})
    session = open_session(settings, runtime, transport)
    out = await post(session, text="x")
    assert (out.ok, out.response) == (False, "queued")
