"""Connection settings every HTTP connector takes: TLS checks and a proxy.

`TransportSettings` is a base for a connector's settings model (its fields come first in the
reference); `client_options` turns them into `HttpClient`'s `verify` and `proxy`. Light to
import (no httpx, no TLS): connector modules import it with their models.

TLS: `verify_tls` (default true: the server's certificate and host name are checked against
the system's certificate authorities), `ca_file` (a PEM bundle to trust instead, for an API
behind a private CA; relative to the recipe's folder). Proxy: `proxy` (an http:// proxy for
every request; https requests go through a CONNECT tunnel, RFC 9110 section 9.3.6; a password
in it is masked like any secret). `HTTP_PROXY`/`HTTPS_PROXY` are not read: a recipe names its
proxy, so a run behaves the same under cron as in a shell.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from flowkit.connectors.base import Runtime
from flowkit.errors import ConnectorError, ErrorKind

if TYPE_CHECKING:
    import ssl

__all__ = ["TransportSettings", "client_options"]


class TransportSettings(BaseModel):
    """TLS and proxy settings, shared by the HTTP connectors' settings models."""

    verify_tls: bool = Field(
        True,
        description="Check the server's TLS certificate and host name (`false`: no checks, "
        "for a test server only).",
    )
    ca_file: str | None = Field(
        None,
        description="PEM file of the certificate authorities to trust instead of the system's "
        "(an API behind a private CA); relative to the recipe's folder.",
    )
    proxy: str | None = Field(
        None,
        description="An http:// proxy for every request (https through a CONNECT tunnel); "
        "`http://user:password@host:port` for one that asks for a login.",
    )

    @field_validator("proxy")
    @classmethod
    def _http_proxy(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith("http://"):
            raise ValueError("only http:// proxies are supported (https goes through them)")
        return value

    @model_validator(mode="after")
    def _ca_needs_checks(self) -> TransportSettings:
        if self.ca_file is not None and not self.verify_tls:
            raise ValueError("ca_file has no effect with verify_tls: false; drop one of them")
        return self


def client_options(settings: TransportSettings, runtime: Runtime, connector: str) -> dict[str, Any]:
    """`HttpClient`'s `verify` and `proxy` for `settings`; registers a proxy password as a
    secret. A `ca_file` that cannot be loaded is a validation error naming the file."""
    if settings.proxy is not None:
        password = urlsplit(settings.proxy).password
        if password:
            runtime.register_secret(unquote(password))
            runtime.register_secret(password)
    return {"verify": _verify(settings, runtime, connector), "proxy": settings.proxy}


def _verify(settings: TransportSettings, runtime: Runtime, connector: str) -> bool | ssl.SSLContext:
    """What to check a server's certificate against: the system's CAs, `ca_file`, or nothing."""
    import ssl

    if settings.ca_file is None:
        return settings.verify_tls
    path = Path(runtime.base_dir) / Path(settings.ca_file).expanduser()
    try:
        return ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        reason = "no such file"
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
    raise ConnectorError(
        f"{connector}: ca_file {path}: cannot load it as PEM certificates ({reason})",
        kind=ErrorKind.VALIDATION,
        hint="point `ca_file` at the certificate authority's PEM file",
    )
