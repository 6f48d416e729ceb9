"""The HTTP side of the Stripe sandbox: routes, authentication, Stripe's idempotency rules,
fault injection and the `/_sandbox` control endpoints."""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from flowkit.sandbox.stripe.endpoints import _Endpoints
from flowkit.sandbox.stripe.params import JSON, StripeError, _hash, decode_form
from flowkit.sandbox.stripe.records import IDEMPOTENCY_TTL, Effect, StripeFaults, _Saved

_LIST = {"limit", "starting_after", "ending_before", "created", "expand"}


class _Http(_Endpoints):
    """Serves the endpoints over aiohttp; `app` is built by `_build_app`."""

    api_key: str
    faults: StripeFaults
    _saved: dict[tuple[str, str], _Saved]

    # ------------------------------------------------------------------ HTTP plumbing
    def _build_app(self) -> web.Application:
        app = web.Application()
        ch, cu = self.charges, self.customers
        pi, re_ = self.payment_intents, self.refunds
        ops: list[tuple[str, str, Callable[[JSON, dict[str, str]], JSON], set[str]]] = [
            ("GET", "/v1/charges", lambda p, _: self._list(ch, "/v1/charges", p, {
                k: p[k] for k in ("customer", "payment_intent", "transfer_group") if k in p}),
             _LIST | {"customer", "payment_intent", "transfer_group"}),
            ("POST", "/v1/charges", self._charge_create,
             {"amount", "currency", "customer", "description", "metadata", "receipt_email",
              "source", "shipping", "statement_descriptor", "transfer_group", "expand"}),
            ("GET", "/v1/charges/{id}", lambda p, i: self._get(ch, i["id"], "charge",
                                                               executed=False), {"expand"}),
            ("POST", "/v1/charges/{id}", self._charge_update,
             {"description", "metadata", "receipt_email", "shipping", "transfer_group",
              "expand"}),
            ("GET", "/v1/customers", lambda p, _: self._list(cu, "/v1/customers", p, {
                k: p[k] for k in ("email",) if k in p}), _LIST | {"email"}),
            ("POST", "/v1/customers", self._customer_create,
             {"email", "name", "description", "phone", "address", "metadata", "expand"}),
            ("GET", "/v1/customers/{id}", lambda p, i: self._get(cu, i["id"], "customer",
                                                                 executed=False), {"expand"}),
            ("POST", "/v1/customers/{id}", self._customer_update,
             {"email", "name", "description", "phone", "address", "metadata", "expand"}),
            ("GET", "/v1/payment_intents", lambda p, _: self._list(pi, "/v1/payment_intents",
             p, {k: p[k] for k in ("customer",) if k in p}), _LIST | {"customer"}),
            ("POST", "/v1/payment_intents", self._pi_create,
             {"amount", "currency", "customer", "description", "metadata", "receipt_email",
              "payment_method", "payment_method_types", "confirm", "capture_method",
              "automatic_payment_methods", "return_url", "off_session", "expand"}),
            ("GET", "/v1/payment_intents/{id}", lambda p, i: self._get(
                pi, i["id"], "payment_intent", executed=False), {"expand", "client_secret"}),
            ("POST", "/v1/payment_intents/{id}", self._pi_update,
             {"description", "metadata", "receipt_email", "expand"}),
            ("POST", "/v1/payment_intents/{id}/confirm", self._pi_confirm,
             {"payment_method", "return_url", "off_session", "expand"}),
            ("GET", "/v1/refunds", lambda p, _: self._list(re_, "/v1/refunds", p, {
                k: p[k] for k in ("charge", "payment_intent") if k in p}),
             _LIST | {"charge", "payment_intent"}),
            ("POST", "/v1/refunds", self._refund_create,
             {"charge", "payment_intent", "amount", "reason", "metadata", "expand"}),
            ("GET", "/v1/refunds/{id}", lambda p, i: self._get(re_, i["id"], "refund",
                                                               executed=False), {"expand"}),
        ]  # fmt: skip
        for method, path, op, allowed in ops:
            app.router.add_route(method, path, self._endpoint(op, allowed))
        app.router.add_get("/_sandbox/faults", self._faults_get)
        app.router.add_post("/_sandbox/faults", self._faults_post)
        app.router.add_delete("/_sandbox/faults", self._faults_delete)
        app.router.add_get("/_sandbox/ledger", self._ledger_get)
        app.router.add_get("/_sandbox/state", self._state_get)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    def _respond(self, status: int, body: JSON, headers: dict[str, str]) -> web.Response:
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    def _take(self, knob: str, request: web.Request) -> bool:
        with self._lock:
            match = self.faults.match
            if match and not f"{request.method} {request.path}".startswith(match):
                return False
            left: int = getattr(self.faults, knob)
            if left <= 0:
                return False
            setattr(self.faults, knob, left - 1)
            return True

    def _authenticated(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        key: str | None = None
        if header.startswith("Bearer "):
            key = header[7:].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        return key

    def _endpoint(
        self, op: Callable[[JSON, dict[str, str]], JSON], allowed: set[str]
    ) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            request_id = "req_" + secrets.token_hex(7)
            headers = {"Request-Id": request_id, "Stripe-Version": "2024-06-20"}
            key = self._authenticated(request)
            if key is None:
                return self._respond(401, {"error": {"type": "invalid_request_error",
                    "message": "You did not provide an API key. You need to provide your API "
                    "key in the Authorization header, using Bearer auth (e.g. 'Authorization: "
                    "Bearer YOUR_SECRET_KEY')."}}, headers)  # fmt: skip
            if key != self.api_key:
                shown = (key[:8] if key.startswith(("sk_test_", "sk_live_")) else key[:3]) + "****"
                headers["WWW-Authenticate"] = 'Basic realm="Stripe"'
                return self._respond(401, {"error": {"type": "invalid_request_error",
                    "message": f"Invalid API Key provided: {shown}"}}, headers)  # fmt: skip
            write = request.method == "POST"
            if write and self._take("drop_before_apply_next", request):
                return self._drop(request)
            if self._take("fail_next", request):
                return self._injected_failure(headers)
            try:
                params = await self._params(request, allowed)
            except StripeError as err:
                return self._respond(err.status, {"error": err.error}, headers)
            idem = request.headers.get("Idempotency-Key") if write else None
            status, body, replayed, applied = await self._run(
                request, op, params, key, idem, request_id
            )
            if idem is not None:
                headers["Idempotency-Key"] = idem
            if replayed is not None:
                headers["Idempotent-Replayed"] = "true"
                headers["Original-Request"] = replayed
            elif applied and self._take("drop_after_apply_next", request):
                return self._drop(request)
            if self._take("malformed_next", request):
                text = _dumps(body)
                return web.Response(status=status, text=text[: len(text) // 2], headers=headers,
                                    content_type="application/json")  # fmt: skip
            return self._respond(status, body, headers)

        return handle

    async def _run(
        self,
        request: web.Request,
        op: Callable[[JSON, dict[str, str]], JSON],
        params: JSON,
        api_key: str,
        idem: str | None,
        request_id: str,
    ) -> tuple[int, JSON, str | None, bool]:
        """Execute with Stripe's idempotency rules; returns (status, body, replayed-from,
        whether a write was applied)."""
        digest = _hash(request.method, request.path, params)
        slot = (api_key, idem or "")
        if idem is not None:
            with self._lock:
                saved = self._saved.get(slot)
                if saved is not None and saved.done and self.clock() - saved.at > IDEMPOTENCY_TTL:
                    saved = None
                if saved is not None and not saved.done:
                    return 409, {"error": {"type": "idempotency_error",
                        "code": "idempotency_key_in_use", "message": "There is currently "
                        "another in-progress request using this Idempotent Key (that probably "
                        "means you submitted twice, and the other request is still going "
                        f"through): {idem}. Please try again later."}}, None, False  # fmt: skip
                if saved is not None and (saved.method, saved.path) != (
                    request.method,
                    request.path,
                ):
                    return 400, {"error": {"type": "idempotency_error", "message": "Keys for "
                        "idempotent requests can only be used for the same endpoint they were "
                        f"first used for ('{saved.method} {saved.path}' vs '{request.method} "
                        f"{request.path}'). Try using a key other than '{idem}' if you meant "
                        "to execute a different request."}}, None, False  # fmt: skip
                if saved is not None and saved.params_hash != digest:
                    return 400, {"error": {"type": "idempotency_error", "message": "Keys for "
                        "idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{idem}' if you "
                        "meant to execute a different request."}}, None, False  # fmt: skip
                if saved is not None:
                    return saved.status, copy.deepcopy(saved.body), saved.request_id, False
                if len(idem) > 255:
                    return 400, {"error": {"type": "invalid_request_error", "message":
                        "Idempotency keys can be at most 255 characters long.",
                        "param": "Idempotency-Key"}}, None, False  # fmt: skip
                self._saved[slot] = _Saved(request.method, request.path, digest, self.clock())
        applied = False
        try:
            if self.faults.latency_ms:
                await asyncio.sleep(self.faults.latency_ms / 1000)
            expand = params.get("expand") or []
            in_list = request.method == "GET" and not request.match_info
            self._check_expand(expand, in_list=in_list)
            with self._lock:
                obj = op(params, dict(request.match_info))
                if request.method == "POST":
                    applied = True
                    self.ledger.append(
                        Effect(request.method, request.path, idem, digest, self.clock(), obj["id"])
                    )
                status, body = 200, self._expand(obj, expand, in_list=in_list)
        except StripeError as err:
            status, body = err.status, {"error": err.error}
            if request.method == "POST" and err.executed and err.status == 402:
                applied = True  # a declined charge exists now
                self.ledger.append(Effect(request.method, request.path, idem, digest,
                                          self.clock(), str(err.error.get("charge"))))  # fmt: skip
            if not err.executed and not applied and idem is not None:
                with self._lock:
                    self._saved.pop(slot, None)
                return status, body, None, False
        except Exception:
            status, body = 500, {"error": {"type": "api_error",
                                           "message": "An unknown error occurred"}}  # fmt: skip
        if idem is not None:
            with self._lock:
                done = _Saved(request.method, request.path, digest, self.clock(), status,
                              copy.deepcopy(body), request_id, True)  # fmt: skip
                self._saved[slot] = done
        return status, body, None, applied

    async def _params(self, request: web.Request, allowed: set[str]) -> JSON:
        pairs = list(request.query.items())
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype not in ("application/x-www-form-urlencoded", "", "application/octet-stream"):
                raise StripeError(400, "Invalid request: Stripe accepts only "
                                  "application/x-www-form-urlencoded request bodies, not "
                                  f"{ctype}.")  # fmt: skip
            from urllib.parse import parse_qsl

            text = (await request.read()).decode("utf-8", "replace")
            pairs += parse_qsl(text, keep_blank_values=True)
        params = decode_form(pairs)
        for name in params:
            if name not in allowed:
                raise StripeError(400, f"Received unknown parameter: {name}", param=name)
        return params

    def _injected_failure(self, headers: dict[str, str]) -> web.Response:
        status = self.faults.fail_status
        if self.faults.retry_after is not None:
            headers["Retry-After"] = str(self.faults.retry_after)
        if status == 429:
            error = {"type": "invalid_request_error", "code": "rate_limit", "message":
                     "Request rate limit exceeded. Learn more about rate limits here "
                     "https://stripe.com/docs/rate-limits."}  # fmt: skip
        else:
            error = {"type": "api_error", "message": "An unknown error occurred"}
        return self._respond(status, {"error": error}, headers)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPServiceUnavailable()  # never reaches the closed socket

    async def _unknown(self, request: web.Request) -> web.Response:
        return self._respond(404, {"error": {"type": "invalid_request_error", "message":
            f"Unrecognized request URL ({request.method}: {request.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/."}},
            {})  # fmt: skip

    # ------------------------------------------------------------------ control endpoints
    async def _faults_get(self, _request: web.Request) -> web.Response:
        return web.json_response(asdict(self.faults))

    async def _faults_post(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            with self._lock:
                self.faults.update(changes)
        except (ValueError, TypeError) as err:
            return web.json_response({"error": f"bad fault settings: {err}"}, status=400)
        return web.json_response(asdict(self.faults))

    async def _faults_delete(self, _request: web.Request) -> web.Response:
        with self._lock:
            self.faults = StripeFaults()
        return web.json_response(asdict(self.faults))

    async def _ledger_get(self, _request: web.Request) -> web.Response:
        return web.json_response([asdict(e) for e in self.ledger])

    async def _state_get(self, _request: web.Request) -> web.Response:
        return web.json_response(self.summary())


def _dumps(body: Any) -> str:
    return json.dumps(body, indent=2)
