"""The `http` connector: any JSON/REST API through the shared HTTP layer.

Actions, one per method so each declares its effect:
  get (READ); post (WRITE, not idempotent); post_idempotent (WRITE, HEADER: needs the
  `idempotency_header` setting, e.g. `Idempotency-Key`, which carries `call.idempotency_key`);
  put and delete (WRITE, NATURAL: repeating them yields the same state, RFC 9110 section 9.2.2);
  patch (WRITE, not idempotent); list (READ, follows pagination, a trigger).
Each request action returns {status, headers, body}: the body is parsed JSON when the answer
says it is JSON (malformed JSON is an error), its text otherwise, None when empty.

`list` pages through results by, in order of preference: a cursor field in the body
(`next_cursor_field`, sent back as the `cursor_param` query parameter) or the RFC 8288 `Link`
header with rel="next" (https://www.rfc-editor.org/rfc/rfc8288). It stops with an error when a
cursor repeats. The output `cursor` is the last cursor the API returned (or the input one), so
a trigger can resume from it where the API supports that.

Authentication (`auth` setting, by `type`): none, basic (RFC 7617), bearer (RFC 6750), api_key
(a header), oauth2_client_credentials and oauth2_refresh_token (RFC 6749 sections 4.4 and 6; a
rotated refresh token is kept in the connection's key-value store).

TLS and proxies: the `verify_tls`, `ca_file` and `proxy` settings every HTTP connector takes
(`flowkit.connectors.http_options`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
)
from flowkit.connectors.http_options import TransportSettings, client_options
from flowkit.connectors.http_pages import next_link, paginate_cursor
from flowkit.errors import ConnectorError

# The HTTP layer (httpx, TLS) is imported when a connection opens, not with the models:
# `flowkit validate` needs only the models (docs/performance.md, start-up).
if TYPE_CHECKING:
    import httpx

    from flowkit.connectors.http_client import HttpClient, Reply

__all__ = ["HttpSession", "HttpSettings", "connector", "make_client"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoAuthSettings(_Strict):
    type: Literal["none"] = "none"


class BasicAuthSettings(_Strict):
    type: Literal["basic"]
    username: str
    password: SecretStr


class BearerAuthSettings(_Strict):
    type: Literal["bearer"]
    token: SecretStr


class ApiKeyAuthSettings(_Strict):
    type: Literal["api_key"]
    header: str = Field("X-Api-Key", description="Header that carries the key.")
    key: SecretStr


class ClientCredentialsSettings(_Strict):
    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    client_auth: Literal["basic", "body"] = "basic"


class RefreshTokenSettings(_Strict):
    type: Literal["oauth2_refresh_token"]
    token_url: str
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr
    client_auth: Literal["basic", "body"] = "basic"


AuthSettings = Annotated[
    NoAuthSettings
    | BasicAuthSettings
    | BearerAuthSettings
    | ApiKeyAuthSettings
    | ClientCredentialsSettings
    | RefreshTokenSettings,
    Field(discriminator="type"),
]


class HttpSettings(TransportSettings, _Strict):
    """Connection settings of a generic REST API."""

    base_url: str = Field(description="Root URL; action paths are relative to it.")
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request.")
    auth: AuthSettings = Field(default_factory=NoAuthSettings)
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for connect and answer.")
    rate_limit: float | None = Field(None, gt=0, description="At most this many requests/s.")
    burst: int | None = Field(None, ge=1, description="Requests allowed at once (default: rate).")
    max_connections: int = Field(50, ge=1)
    idempotency_header: str | None = Field(
        None, description="Header carrying the idempotency key on writes (e.g. Idempotency-Key)."
    )


class HttpSession:
    """An open connection: the client plus the settings actions need."""

    def __init__(self, client: HttpClient, settings: HttpSettings) -> None:
        self.client = client
        self.settings = settings


def _auth(settings: HttpSettings, runtime: Runtime) -> httpx.Auth | None:
    from flowkit.connectors.auth import (
        ApiKeyAuth,
        BasicAuth,
        BearerAuth,
        OAuth2ClientCredentials,
        OAuth2RefreshToken,
    )

    auth = settings.auth
    if isinstance(auth, BasicAuthSettings):
        return BasicAuth(auth.username, auth.password)
    if isinstance(auth, BearerAuthSettings):
        return BearerAuth(auth.token)
    if isinstance(auth, ApiKeyAuthSettings):
        return ApiKeyAuth(auth.header, auth.key)
    if isinstance(auth, ClientCredentialsSettings):
        return OAuth2ClientCredentials(
            auth.token_url,
            auth.client_id,
            auth.client_secret,
            auth.scope,
            client_auth=auth.client_auth,
        )
    if isinstance(auth, RefreshTokenSettings):
        return OAuth2RefreshToken(
            auth.token_url,
            auth.client_id,
            auth.client_secret,
            auth.refresh_token,
            runtime.kv,
            "http.oauth2.refresh_token",
            client_auth=auth.client_auth,
        )
    return None


def make_client(
    settings: HttpSettings, runtime: Runtime, transport: httpx.AsyncBaseTransport | None = None
) -> HttpClient:
    """The HTTP client for a connection (tests pass a `transport`)."""

    from flowkit.connectors.http_client import HttpClient, TokenBucket

    limiter = None
    if settings.rate_limit:
        burst = settings.burst or max(1, int(settings.rate_limit))
        limiter = TokenBucket(settings.rate_limit, burst)
    return HttpClient(
        settings.base_url,
        auth=_auth(settings, runtime),
        headers=settings.headers,
        timeout=settings.timeout,
        max_connections=settings.max_connections,
        rate_limiter=limiter,
        runtime=runtime,
        transport=transport,
        name=runtime.connection or "http",
        **client_options(settings, runtime, "http"),
    )


async def _open(settings: HttpSettings, runtime: Runtime) -> HttpSession:
    return HttpSession(make_client(settings, runtime), settings)


async def _close(session: HttpSession) -> None:
    await session.client.aclose()


# requests --------------------------------------------------------------------------------------


class ReadInput(Input):
    path: str = Field(description="Path relative to base_url (or an absolute URL).")
    query: dict[str, Any] = Field(default_factory=dict, description="Query parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers.")


class WriteInput(ReadInput):
    json_body: Any = Field(None, alias="json", description="JSON body to send.")


class HttpResponse(Output):
    """What a request action returns."""

    status: int
    headers: dict[str, str] = Field(description="Lower-case names; repeated ones joined by ', '.")
    body: Any = None


def _body(client: HttpClient, reply: Reply) -> Any:
    if not reply.content:
        return None
    ctype = reply.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return client.json(reply)
    return reply.text


async def _send(
    session: HttpSession, method: str, input: ReadInput, call: CallContext, *, keyed: bool
) -> HttpResponse:
    headers = dict(input.headers)
    if keyed:
        if not session.settings.idempotency_header:
            raise ConnectorError(
                "post_idempotent needs the `idempotency_header` connection setting",
                kind=ErrorKind.VALIDATION,
                hint="set it to the header the API reads, e.g. `Idempotency-Key`, or use `post`",
            )
        headers[session.settings.idempotency_header] = call.idempotency_key
    body = input.json_body if isinstance(input, WriteInput) else None
    reply = await session.client.fetch(
        method, input.path, params=input.query or None, json=body, headers=headers
    )
    return HttpResponse(
        status=reply.status_code, headers=reply.headers, body=_body(session.client, reply)
    )


class Get(Action[ReadInput, HttpResponse]):
    name = "get"
    description = "GET a resource."
    effect = Effect.READ
    Input = ReadInput
    Output = HttpResponse

    async def run(self, session: HttpSession, input: ReadInput, call: CallContext) -> HttpResponse:
        return await _send(session, "GET", input, call, keyed=False)


class _Write(Action[WriteInput, HttpResponse]):
    method: str = "POST"
    keyed = False
    effect = Effect.WRITE
    Input = WriteInput
    Output = HttpResponse

    async def run(self, session: HttpSession, input: WriteInput, call: CallContext) -> HttpResponse:
        return await _send(session, self.method, input, call, keyed=self.keyed)


class Post(_Write):
    name = "post"
    description = "POST (may create twice if repeated)."
    idempotency = Idempotency.NONE


class PostIdempotent(_Write):
    name = "post_idempotent"
    description = "POST with the idempotency key in the `idempotency_header` setting's header."
    idempotency = Idempotency.HEADER
    keyed = True


class Put(_Write):
    name = "put"
    description = "PUT (replace a resource; repeating is harmless)."
    method = "PUT"
    idempotency = Idempotency.NATURAL


class Patch(_Write):
    name = "patch"
    description = "PATCH (partial update)."
    method = "PATCH"
    idempotency = Idempotency.NONE


class Delete(_Write):
    name = "delete"
    description = "DELETE a resource (repeating is harmless)."
    method = "DELETE"
    idempotency = Idempotency.NATURAL


# list ------------------------------------------------------------------------------------------


class ListInput(ReadInput):
    cursor: str | None = Field(None, description="Start from this cursor (`cursor_param`).")
    items_field: str | None = Field(
        None, description="Dotted path of the item list in the body (None: the body is a list)."
    )
    cursor_param: str = Field("cursor", description="Query parameter that takes the cursor.")
    next_cursor_field: str | None = Field(
        None, description="Dotted path of the next cursor in the body (None: use Link headers)."
    )
    max_pages: int = Field(1000, ge=1, description="Fail after this many pages.")


class ListOutput(Output):
    items: list[Any]
    cursor: str | None = Field(description="The last cursor returned by the API (or the input).")


def _dig(data: Any, path: str | None, what: str, where: str) -> Any:
    if not path:
        return data
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            if what == "cursor":
                return None
            raise ConnectorError(
                f"{what} field {path!r} not found in the answer of {where}",
                kind=ErrorKind.PERMANENT,
            )
    return node


class ListAction(Action[ListInput, ListOutput]):
    name = "list"
    description = "GET a collection, following cursor or Link-header pagination."
    effect = Effect.READ
    Input = ListInput
    Output = ListOutput

    async def run(self, session: HttpSession, input: ListInput, call: CallContext) -> ListOutput:
        client = session.client
        last_cursor = input.cursor
        where = f"GET {input.path.split('?')[0]}"

        async def fetch(token: str | None) -> tuple[list[Any], str | None]:
            nonlocal last_cursor
            params: dict[str, Any] | None
            if input.next_cursor_field:
                params = dict(input.query)
                current = token if token is not None else input.cursor
                if current is not None:
                    params[input.cursor_param] = current
                response = await client.request(
                    "GET", input.path, params=params or None, headers=input.headers
                )
            else:  # Link pagination: the token is the next URL itself
                url = token if token is not None else input.path
                params = input.query if token is None else None
                response = await client.request("GET", url, params=params, headers=input.headers)
            data = client.json(response)
            items = _dig(data, input.items_field, "items", where)
            if not isinstance(items, list):
                raise ConnectorError(
                    f"expected a list of items from {where}, got {type(items).__name__}",
                    kind=ErrorKind.PERMANENT,
                    hint="set `items_field` to the path of the list in the answer",
                )
            if input.next_cursor_field:
                following = _dig(data, input.next_cursor_field, "cursor", where)
                following = None if following in (None, "") else str(following)
                if following is not None:
                    last_cursor = following
            else:
                following = next_link(response)
            return items, following

        items = [item async for item in paginate_cursor(fetch, max_pages=input.max_pages)]
        return ListOutput(items=items, cursor=last_cursor)


connector = Connector(
    "http",
    description="Any JSON/REST API: get, post, put, patch, delete and paginated list.",
    settings=HttpSettings,
    actions=[Get(), Post(), PostIdempotent(), Put(), Patch(), Delete(), ListAction()],
    open=_open,
    close=_close,
    docs_url="https://www.rfc-editor.org/rfc/rfc9110",
)
