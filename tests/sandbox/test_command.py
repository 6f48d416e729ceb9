"""`flowkit sandbox`: in-process through `commands.sandbox.run`, and as a real process."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from flowkit.commands import sandbox as command
from flowkit.errors import UsageError
from flowkit.sandbox.runner import SERVICES

from .test_runner import _free_block


def parse_exports(lines: list[str]) -> dict[str, str]:
    env = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


def test_run_prints_exports_writes_env_file_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "sandbox.env"
    stop = threading.Event()
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(command.run(seed=1, port=None, env_file=env_file, stop=stop))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not env_file.exists():  # written once the servers listen
        assert time.monotonic() < deadline, "the sandbox did not start"
        time.sleep(0.01)
    stop.set()  # the announcement is printed before `run` starts waiting
    worker.join(timeout=10)
    assert codes == [0]
    out = capsys.readouterr().out.splitlines()
    exports = parse_exports(out)
    assert exports["MAIL_FROM_NAME"] == "Sandbox Shop"
    assert exports["STRIPE_API_KEY"] == "sk_test_flowkit_sandbox"
    written = env_file.read_text(encoding="utf-8").splitlines()
    assert written[0].startswith("#")
    assert 'MAIL_FROM_NAME="Sandbox Shop"' in written
    assert f"SMTP_PORT={exports['SMTP_PORT']}" in written
    assert len(written) == len(exports) + 1
    assert any(line.startswith("What was sent: http://127.0.0.1:") for line in out)
    assert out[-1] == "flowkit sandbox: stopped."


def test_dotenv_line_quotes_only_when_needed() -> None:
    assert command.dotenv_line("A", "http://127.0.0.1:80/x") == "A=http://127.0.0.1:80/x"
    assert command.dotenv_line("B", 'a "b" c') == 'B="a \\"b\\" c"'


def test_busy_port_is_a_usage_error() -> None:
    base = _free_block(len(SERVICES))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base))
        blocker.listen()
        with pytest.raises(UsageError) as info:
            command.run(seed=1, port=base, env_file=None)
    assert f"port {base} (stripe) is in use" in str(info.value)
    assert info.value.hint is not None and "--port" in info.value.hint


def test_port_out_of_range_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="out of range"):
        command.run(seed=1, port=65534, env_file=None)


def _flowkit() -> list[str]:
    script = Path(sys.executable).with_name("flowkit")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from flowkit.cli import main; main()"]


def test_flowkit_sandbox_process_serves_and_exits_cleanly_on_sigint(
    tmp_path: Path, http: httpx.Client
) -> None:
    process = subprocess.Popen(
        [*_flowkit(), "sandbox", "--seed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            assert time.monotonic() < deadline, f"no ready line; got {lines}"
            line = process.stdout.readline()
            assert line, (
                f"the process ended early: {process.stderr.read() if process.stderr else ''}"
            )
            lines.append(line.rstrip("\n"))
        env = parse_exports(lines)
        charges = http.get(
            env["FLOWKIT_STRIPE_URL"] + "/v1/charges", auth=(env["STRIPE_API_KEY"], "")
        ).json()
        assert len(charges["data"]) == 2
        status = http.get(env["FLOWKIT_SANDBOX_URL"]).json()
        assert status["summary"]["emails_caught"] == 0
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
        assert time.monotonic() - started < 3
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "flowkit sandbox: stopped." in out
    assert "Traceback" not in err
