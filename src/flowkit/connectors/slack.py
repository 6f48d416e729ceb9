"""The `slack` connector: post messages through a Slack incoming webhook.

References followed:
  * https://api.slack.com/messaging/webhooks (moved to
    https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks): POST a JSON
    body (`text`, optional `blocks`; `username` and `icon_emoji` on legacy webhooks) to the
    webhook URL; success is HTTP 200 with the body `ok`.
  * https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks: errors
    are plain-text codes with a status: 400 `invalid_payload` / `user_not_found`, 403
    `action_prohibited`, 404 `channel_not_found`, 410 `channel_is_archived`, 500 `rollup_error`;
    a revoked or mistyped URL answers `no_service` (404) or `invalid_token` (403).
  * https://api.slack.com/apis/rate-limits: about one message per second per webhook; over
    that Slack answers 429 with `Retry-After` seconds.

The webhook URL is the credential: it is registered as a secret and never appears in a
message (errors name the request as `POST ***`). Webhooks have no idempotency key: a post
whose outcome is unknown (timeout after sending) may appear twice if repeated, so the action
declares `Idempotency.NONE` and the engine does not repeat it blindly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, SecretStr

from flowkit.connectors.base import (
    Action,
    CallContext,
    Connector,
    Effect,
    ErrorKind,
    Idempotency,
    Input,
    Output,
    Runtime,
    reveal,
)
from flowkit.connectors.http_options import TransportSettings, client_options
from flowkit.errors import ConnectorError

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient

__all__ = ["SlackSession", "SlackSettings", "connector", "open_session"]

# Slack's text error codes and what they mean for retrying.
_KINDS = {
    "invalid_payload": ErrorKind.VALIDATION,
    "user_not_found": ErrorKind.VALIDATION,
    "invalid_blocks": ErrorKind.VALIDATION,
    "invalid_blocks_format": ErrorKind.VALIDATION,
    "missing_text_or_fallback_or_attachments": ErrorKind.VALIDATION,
    "no_text": ErrorKind.VALIDATION,
    "too_many_attachments": ErrorKind.VALIDATION,
    "action_prohibited": ErrorKind.PERMANENT,
    "posting_to_general_channel_denied": ErrorKind.PERMANENT,
    "channel_not_found": ErrorKind.NOT_FOUND,
    "channel_is_archived": ErrorKind.PERMANENT,
    "no_service": ErrorKind.AUTH,
    "no_service_id": ErrorKind.AUTH,
    "no_team": ErrorKind.AUTH,
    "team_disabled": ErrorKind.AUTH,
    "invalid_token": ErrorKind.AUTH,
    "no_active_hooks": ErrorKind.AUTH,
    "rollup_error": ErrorKind.TRANSIENT,
}
_HINTS = {
    ErrorKind.AUTH: "the webhook URL is revoked or mistyped: create a new incoming webhook",
    ErrorKind.NOT_FOUND: "the webhook's channel no longer exists: create a new webhook",
}


class SlackSettings(TransportSettings):
    """One incoming webhook."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: SecretStr = Field(
        description="https://hooks.slack.com/services/T.../B.../... (a secret)."
    )
    timeout: float = Field(10.0, gt=0, description="Seconds to wait for connect and answer.")


def _code(response: httpx.Response) -> str:
    return " ".join(response.text.split()) or response.reason_phrase


def _kind(response: httpx.Response, kind: ErrorKind) -> ErrorKind:
    if response.status_code == 429 or response.status_code >= 500:
        return kind
    return _KINDS.get(_code(response), kind)


class SlackSession:
    """An open webhook: the client and the URL to post to."""

    def __init__(self, client: HttpClient, url: str) -> None:
        self.client = client
        self.url = url


def open_session(
    settings: SlackSettings, runtime: Runtime, transport: httpx.AsyncBaseTransport | None = None
) -> SlackSession:
    """A session for a webhook (tests pass a `transport`)."""
    import httpx

    from flowkit.connectors.http_client import HttpClient

    url = reveal(settings.webhook_url)
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConnectorError(
            "webhook_url must be an http(s) URL like https://hooks.slack.com/services/...",
            kind=ErrorKind.VALIDATION,
        )
    client = HttpClient(
        "",
        timeout=settings.timeout,
        max_connections=4,
        error_message=_code,
        classify=_kind,
        runtime=runtime,
        transport=transport,
        name=runtime.connection or "slack",
        **client_options(settings, runtime, "slack"),
    )
    client.add_secret(url)
    if parsed.path.strip("/"):
        client.add_secret(parsed.path)
    return SlackSession(client, url)


async def _open(settings: SlackSettings, runtime: Runtime) -> SlackSession:
    return open_session(settings, runtime)


async def _close(session: SlackSession) -> None:
    await session.client.aclose()


class PostMessageInput(Input):
    text: str = Field(min_length=1, description="Message text (mrkdwn); the fallback for blocks.")
    blocks: list[dict[str, Any]] | None = Field(None, description="Block Kit blocks.")
    username: str | None = Field(None, description="Display name (legacy webhooks only).")
    icon_emoji: str | None = Field(None, description="e.g. `:robot_face:` (legacy webhooks).")


class PostMessageOutput(Output):
    ok: bool
    response: str = Field(description="Slack's answer body (`ok`).")


class PostMessage(Action[PostMessageInput, PostMessageOutput]):
    name = "post_message"
    description = "Post a message to the webhook's channel."
    effect = Effect.NOTIFY
    idempotency = Idempotency.NONE
    Input = PostMessageInput
    Output = PostMessageOutput

    async def run(
        self, session: SlackSession, input: PostMessageInput, call: CallContext
    ) -> PostMessageOutput:
        payload = input.model_dump(exclude_none=True)
        try:
            response = await session.client.request("POST", session.url, json=payload)
        except ConnectorError as exc:
            if exc.hint is None and exc.kind in _HINTS:
                exc.hint = _HINTS[exc.kind]
            raise
        text = response.text.strip()
        return PostMessageOutput(ok=text == "ok", response=text)


connector = Connector(
    "slack",
    description="Slack incoming webhook: post a message (text and Block Kit blocks).",
    settings=SlackSettings,
    actions=[PostMessage()],
    open=_open,
    close=_close,
    docs_url="https://api.slack.com/messaging/webhooks",
)
