"""The `http` connector's TLS and proxy settings, against an HTTPS server on 127.0.0.1 whose
certificate no system CA signed (as an internal API behind a private CA)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from flowkit.connectors.base import CallContext, Runtime
from flowkit.connectors.http import HttpSettings, connector
from flowkit.errors import ConnectorError, ErrorKind


@pytest.fixture
async def https(certificate: Any) -> AsyncIterator[int]:
    """An HTTPS API on 127.0.0.1 (port yielded), its certificate signed by itself."""

    async def stock(request: web.Request) -> web.Response:
        return web.json_response({"sku": request.match_info["sku"], "stock": 7})

    app = web.Application()
    app.router.add_get("/v1/stock/{sku}", stock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificate.server_context())
    await site.start()
    server = site._server
    assert server is not None
    yield server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


async def _get(port: int, runtime: Any, **settings: Any) -> Any:
    config = HttpSettings.model_validate({"base_url": f"https://localhost:{port}/v1", **settings})
    session = await connector.open(config, runtime)
    try:
        action = connector.actions["get"]
        data = action.Input.model_validate({"path": "stock/SKU-1"})
        return await action.run(session, data, CallContext("fk-1"))
    finally:
        await connector.close(session)


async def test_ca_file_trusts_a_private_ca_relative_to_the_recipe(
    https: int, runtime: Any, certificate: Any
) -> None:
    beside = Runtime(
        connection="test",
        kv=runtime.kv,
        register_secret=runtime.secrets.append,
        base_dir=str(certificate.cert.parent),  # the recipe's folder
    )
    got = await _get(https, beside, ca_file=certificate.cert.name)
    assert got.body == {"sku": "SKU-1", "stock": 7}
    got = await _get(https, runtime, ca_file=str(certificate.cert))  # an absolute path
    assert got.status == 200


async def test_without_it_the_certificate_is_refused_and_nothing_is_sent(
    https: int, runtime: Any
) -> None:
    with pytest.raises(ConnectorError, match="certificate verify failed") as info:
        await _get(https, runtime)
    assert info.value.maybe_sent is False


async def test_verify_false_turns_the_checks_off(https: int, runtime: Any) -> None:
    assert (await _get(https, runtime, verify_tls=False)).body["stock"] == 7


async def test_a_ca_file_that_cannot_be_loaded_names_the_file(runtime: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConnectorError, match=f"ca_file {missing}: .*no such file") as info:
        await _get(1, runtime, ca_file=str(missing))
    assert info.value.kind is ErrorKind.VALIDATION
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConnectorError, match=f"ca_file {garbage}: cannot load it"):
        await _get(1, runtime, ca_file=str(garbage))


def test_settings_that_contradict_each_other_are_refused() -> None:
    base = {"base_url": "https://api.example"}
    with pytest.raises(ValidationError, match="ca_file has no effect with verify_tls: false"):
        HttpSettings.model_validate({**base, "ca_file": "ca.pem", "verify_tls": False})
    with pytest.raises(ValidationError, match="only http:// proxies"):
        HttpSettings.model_validate({**base, "proxy": "socks5://127.0.0.1:1080"})


async def test_https_through_a_proxy_that_asks_for_a_login(
    https: int, runtime: Any, certificate: Any, connect_proxy: Any
) -> None:
    got = await _get(
        https,
        runtime,
        ca_file=str(certificate.cert),
        proxy=f"http://shop:pw-s3cret@127.0.0.1:{connect_proxy.port}",
    )
    assert got.body["sku"] == "SKU-1"
    (head,) = connect_proxy.heads
    assert head.startswith(f"CONNECT localhost:{https} HTTP/1.1\r\n".encode())
    assert b"Proxy-Authorization: Basic c2hvcDpwdy1zM2NyZXQ=" in head  # shop:pw-s3cret
    assert "pw-s3cret" in runtime.secrets  # masked wherever flowkit prints
