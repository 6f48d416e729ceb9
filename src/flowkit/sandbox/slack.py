"""A local stand-in for Slack incoming webhooks that records every message it accepts.

References followed:
* https://api.slack.com/messaging/webhooks — `POST` a JSON body (`text`, `blocks`,
  `attachments`, ...) to `https://hooks.slack.com/services/T.../B.../X...`; success is HTTP 200
  with the plain-text body `ok`.
* https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks — errors are
  plain-text bodies with HTTP status codes: 400 `invalid_payload` (the body cannot be understood),
  404 for an unknown destination (a revoked or mistyped webhook URL answers `no_service`),
  500 `rollup_error`; a message with neither `text` nor `blocks`/`attachments` is 400 `no_text`.
* https://api.slack.com/apis/rate-limits — incoming webhooks allow about one message per second;
  over that Slack answers 429 with a `Retry-After` header (seconds).

Slack also accepts a form body `payload=<json>` (the legacy form); it is accepted here too.
Fault knobs: `fail_next(count, status, retry_after)` (also `POST /_sandbox/faults` with
`{"fail_next": n, "fail_status": 429, "retry_after": 1}`); the messages are listed at
`GET /_sandbox/messages`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

__all__ = ["DEFAULT_HOOK", "SlackMessage", "SlackSandbox"]

DEFAULT_HOOK = "T0SANDBOX/B0FLOWKIT/sandboxWebhookSecret0001"
_BODIES = {429: "rate_limited", 500: "rollup_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class SlackMessage:
    """One message a webhook accepted."""

    hook: str
    text: str | None
    blocks: list[Any] | None
    payload: dict[str, Any]
    received_at: float


class SlackSandbox:
    """Incoming webhooks: `app` serves `POST /services/{T}/{B}/{X}`; `messages` records them."""

    def __init__(
        self, hooks: list[str] | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.hooks: set[str] = set(hooks if hooks is not None else [DEFAULT_HOOK])
        self.clock = clock
        self.messages: list[SlackMessage] = []
        self.rejected = 0
        self._fail: list[tuple[int, int | None]] = []
        self._lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/services/{team}/{bot}/{secret}", self._post)
        self.app.router.add_get("/_sandbox/messages", self._list)
        self.app.router.add_post("/_sandbox/faults", self._faults)

    def add_hook(self) -> str:
        """Create another webhook and return its path part (`T…/B…/X…`)."""
        hook = f"T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/"
        hook += secrets.token_urlsafe(18)
        self.hooks.add(hook)
        return hook

    def url(self, base_url: str, hook: str = DEFAULT_HOOK) -> str:
        """The full webhook URL of `hook` on a server at `base_url`."""
        return f"{base_url.rstrip('/')}/services/{hook}"

    def fail_next(self, count: int = 1, status: int = 429, retry_after: int | None = 1) -> None:
        """The next `count` posts answer `status` (429 with `Retry-After`, or 5xx), unrecorded."""
        with self._lock:
            self._fail.extend([(status, retry_after)] * count)

    def summary(self) -> dict[str, int]:
        return {"messages": len(self.messages), "rejected": self.rejected}

    async def _post(self, request: web.Request) -> web.Response:
        hook = "/".join(request.match_info[k] for k in ("team", "bot", "secret"))
        if hook not in self.hooks:
            return self._reply(404, "no_service")
        with self._lock:
            failure = self._fail.pop(0) if self._fail else None
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return self._reply(status, _BODIES.get(status, "rollup_error"), headers)
        raw = await request.read()
        try:
            if request.content_type == "application/x-www-form-urlencoded":
                form = await request.post()
                raw = str(form.get("payload", "")).encode()
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._reply(400, "invalid_payload")
        if not isinstance(payload, dict):
            return self._reply(400, "invalid_payload")
        text, blocks = payload.get("text"), payload.get("blocks")
        if text is not None and not isinstance(text, str):
            return self._reply(400, "invalid_payload")
        if blocks is not None and not isinstance(blocks, list):
            return self._reply(400, "invalid_blocks")
        if not text and not blocks and not payload.get("attachments"):
            return self._reply(400, "no_text")
        with self._lock:
            self.messages.append(SlackMessage(hook, text, blocks, payload, self.clock()))
        return self._reply(200, "ok")

    def _reply(self, status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
        if status != 200:
            self.rejected += 1
        return web.Response(status=status, text=body, headers=headers)

    async def _list(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(m) for m in self.messages])

    async def _faults(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            count = int(body.get("fail_next", 1))
            status = int(body.get("fail_status", 429))
            retry_after = body.get("retry_after", 1)
            self.fail_next(count, status, None if retry_after is None else int(retry_after))
        except (ValueError, TypeError, AttributeError) as err:
            return web.json_response({"error": f"bad fault settings: {err}"}, status=400)
        return web.json_response({"pending_failures": len(self._fail)})
