"""`flowkit sandbox`: serve every stand-in API locally, print the variables, wait for Ctrl-C."""

from __future__ import annotations

import re
import shlex
import sys
import threading
from pathlib import Path

from flowkit.errors import UsageError

_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+-]*$")


def dotenv_line(name: str, value: str) -> str:
    """`NAME=value` for a .env file, double-quoted when the value needs it."""
    if _PLAIN.match(value):
        return f"{name}={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(
    seed: int,
    port: int | None,
    env_file: Path | None,
    *,
    stop: threading.Event | None = None,
) -> int:
    """Start the sandbox, print `export` lines (and write `env_file`), serve until Ctrl-C or
    until `stop` is set (tests); return 0."""
    from flowkit.sandbox.runner import SERVICES, Sandbox

    if port is not None and not 1 <= port <= 65535 - len(SERVICES) + 1:
        raise UsageError(
            f"--port {port} is out of range: the sandbox uses {len(SERVICES)} consecutive ports.",
            hint=f"Pick a base port between 1024 and {65535 - len(SERVICES) + 1}.",
        )
    sandbox = Sandbox(seed=seed, base_port=port)
    try:
        sandbox.start()
    except OSError as exc:
        where = f"ports {port}-{port + len(SERVICES) - 1}" if port else "a free port"
        raise UsageError(
            f"The sandbox could not listen on 127.0.0.1 ({where}): {exc.strerror or exc}.",
            hint="Pick another base port with `--port`, or omit it to use free ports.",
        ) from None
    try:
        env = sandbox.env()
        if env_file is not None:
            text = "# Written by `flowkit sandbox`; valid while it runs.\n"
            text += "".join(dotenv_line(k, v) + "\n" for k, v in env.items())
            env_file.write_text(text, encoding="utf-8")
        _announce(sandbox.urls, env, seed, env_file)
        waiter = stop or threading.Event()
        while not waiter.wait(0.25):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    _say("flowkit sandbox: stopped.")
    return 0


def _announce(urls: dict[str, str], env: dict[str, str], seed: int, env_file: Path | None) -> None:
    names = ", ".join(name for name in urls if name != "control")
    _say(f"flowkit sandbox: serving {names} on 127.0.0.1, {seed} demo records each.")
    _say("# Point the recipes at it (paste into your shell):")
    for name, value in env.items():
        _say(f"export {name}={shlex.quote(value)}")
    if env_file is not None:
        _say(f"# The same variables are in {env_file} (use `flowkit run --env-file {env_file}`).")
    control = urls["control"]
    _say(f"What was sent: {control}/ (counts and links), {control}/mail, {control}/invoices,")
    _say(f"  {control}/stripe/charges, {control}/stock, {control}/slack")
    _say("Press Ctrl-C to stop.")
