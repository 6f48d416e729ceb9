"""Suite-wide guards: a clean environment, no colour, fixed width, and no implicit state store.

A test that runs flowkit without an explicit state path would write to the developer's real
state store; `FLOWKIT_STATE` points at a file that must not be created, and the `state_path`
fixture gives each test its own.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_KEEP = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT"}


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("FLOWKIT_", "STRIPE_", "QBO_", "WOO_", "SHOPIFY_", "SLACK_", "SMTP_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    guard = tmp_path_factory.getbasetemp() / "YOU-FORGOT-TO-CHOOSE-A-STATE-FILE.db"
    monkeypatch.setenv("FLOWKIT_STATE", str(guard))
    yield
    assert not guard.exists(), "a test used the default state store; pass an explicit path"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    from flowkit import redact

    redact.clear()
    yield
    redact.clear()


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost (made with `openssl`)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("TLS tests need the `openssl` command (the cryptography package is absent)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return Certificate(cert, key)
