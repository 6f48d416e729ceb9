"""Third-party plugins: a package installed with pip is found through its entry point, and a
broken one is reported in one line naming its distribution without breaking anything else.

The example plugin (plugin_pkg/) is installed with pip into a private `--target` folder that
the `flowkit` subprocesses get on PYTHONPATH: that is a real pip installation (wheel built by
its PEP 517 backend, `.dist-info` with `entry_points.txt`, RECORD), discovered by the same
`importlib.metadata` scan as site-packages, but it never touches the shared virtualenv that
other test runs use at the same time; the folder disappears with the test's tmp directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # pip install and several `flowkit` processes: ~5 s

PLUGIN_SOURCE = Path(__file__).resolve().parent / "plugin_pkg"
FLOWKIT = Path(sys.executable).with_name("flowkit")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def run_all(commands: dict[str, list[str]], site: Path) -> dict[str, Done]:
    """Run the commands at once (each `flowkit` start takes about a second) with `site` on
    PYTHONPATH; return their results by name."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    started = {
        name: subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in commands.items()
    }
    done = {}
    for name, proc in started.items():
        out, err = proc.communicate(timeout=120)
        done[name] = Done(proc.returncode, out, err)
    return done


@pytest.fixture(scope="module")
def greet_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flowkit-greet installed by pip (offline, no build isolation) into its own folder."""
    source = tmp_path_factory.mktemp("greet-src") / "plugin_pkg"
    shutil.copytree(PLUGIN_SOURCE, source)  # building never writes into the repository
    site = tmp_path_factory.mktemp("greet-site")
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
            "--no-index", "--disable-pip-version-check", "--quiet", "--target", str(site),
            str(source),
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (site / "flowkit_greet-0.1.0.dist-info" / "entry_points.txt").read_text() == (
        "[flowkit.connectors]\ngreet = flowkit_greet:connector\n"
    )
    return site


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two installed-looking distributions whose connectors cannot load."""
    site = tmp_path_factory.mktemp("broken-site")
    plugins = {
        "flowkit_broken": (
            "broken", 'raise ImportError("flowkit-broken needs the \'nothere\' package")'
        ),
        "flowkit_wrong": ("wrong", "connector = 42"),
    }  # fmt: skip
    for module, (name, body) in plugins.items():
        dist = module.replace("_", "-")
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(
            f"[flowkit.connectors]\n{name} = {module}:connector\n"
        )
        (site / f"{module}.py").write_text(body + "\n")
    return site


RUN_GREET = textwrap.dedent(
    """
    import asyncio, json, sys
    from flowkit.connectors.base import CallContext, Runtime
    from flowkit.connectors.registry import Registry

    class KV:
        async def get(self, key): return None
        async def set(self, key, value): pass

    async def main():
        connector, hello = Registry().action("greet.hello")
        _, record = Registry().action("greet.record")
        settings = connector.settings.model_validate({"greeting": "Hi", "log_file": "g.log"})
        session = await connector.open(settings, Runtime("g", KV(), base_dir=sys.argv[1]))
        call = CallContext(idempotency_key="fk-1")
        page = await hello.run(session, hello.Input(names=["Ann", "Bob", "Cy"], cursor=1), call)
        first = await record.run(session, record.Input(text="hello Ann"), call)
        again = await record.run(session, record.Input(text="hello Ann"), call)
        other = await record.run(session, record.Input(text="hello Bob"), CallContext("fk-2"))
        print(json.dumps([page.model_dump(), first.model_dump(), again.model_dump(),
                          other.model_dump()]))

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def greet_runs(greet_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Done]:
    recipe_dir = tmp_path_factory.mktemp("greet-recipe")
    done = run_all(
        {
            "list": [str(FLOWKIT), "connectors"],
            "show": [str(FLOWKIT), "connectors", "show", "greet"],
            "run": [sys.executable, "-c", RUN_GREET, str(recipe_dir)],
        },
        greet_site,
    )
    log = recipe_dir / "g.log"
    done["log"] = Done(0, log.read_text() if log.exists() else "", "")
    return done


def test_pip_installed_plugin_is_listed_next_to_the_builtins(greet_runs: dict[str, Done]) -> None:
    done = greet_runs["list"]
    assert done.returncode == 0 and done.stderr == ""
    rows = [line.split(None, 4) for line in done.stdout.splitlines()[1:]]
    greet = [r for r in rows if r[0] == "greet"]
    assert greet == [
        ["greet", "hello", "read", "-", "Greet each name (a trigger: returns items and a cursor)."],
        ["greet", "record", "write", "header",
         "Append a line to the log file, once per idempotency key."],
    ]  # fmt: skip
    assert {r[0] for r in rows} >= {"csv", "noop", "smtp", "sql", "greet"}


def test_pip_installed_plugin_shows_its_distribution_and_models(
    greet_runs: dict[str, Done],
) -> None:
    done = greet_runs["show"]
    assert done.returncode == 0, done.stderr
    assert "package: flowkit-greet 0.1.0 (flowkit_greet:connector)" in done.stdout
    assert '  log_file  str   "greetings.log"' in done.stdout


def test_pip_installed_plugin_runs_through_the_registry(greet_runs: dict[str, Done]) -> None:
    done = greet_runs["run"]
    assert done.returncode == 0, done.stderr
    page, first, again, other = json.loads(done.stdout)
    assert page == {
        "items": [
            {"id": "greet-2", "name": "Bob", "text": "Hi, Bob!"},
            {"id": "greet-3", "name": "Cy", "text": "Hi, Cy!"},
        ],
        "cursor": 3,
    }
    assert (first, again, other) == (
        {"line": 1, "duplicate": False},
        {"line": 1, "duplicate": True},
        {"line": 2, "duplicate": False},
    )
    assert greet_runs["log"].stdout == "fk-1\thello Ann\nfk-2\thello Bob\n"


@pytest.fixture(scope="module")
def broken_runs(broken_site: Path) -> dict[str, Done]:
    return run_all(
        {
            "list": [str(FLOWKIT), "connectors"],
            "help": [str(FLOWKIT), "--help"],
            "named": [str(FLOWKIT), "connectors", "show", "broken.x"],
        },
        broken_site,
    )


def test_broken_plugins_are_one_line_each_and_the_rest_still_works(
    broken_runs: dict[str, Done],
) -> None:
    done = broken_runs["list"]
    assert done.stderr.splitlines() == [
        "flowkit: error: connector 'broken' from flowkit-broken 0.1 failed to load: "
        "ImportError: flowkit-broken needs the 'nothere' package; reinstall or remove the "
        "package that provides flowkit_broken:connector",
        "flowkit: error: connector 'wrong' from flowkit-wrong 0.1: flowkit_wrong:connector is "
        "not a flowkit Connector",
    ]
    rows = {tuple(line.split(None, 4)[:2]) for line in done.stdout.splitlines()}
    assert {("broken", "-"), ("wrong", "-"), ("csv", "read"), ("smtp", "send_email")} <= rows
    assert "Traceback" not in done.stdout + done.stderr


def test_broken_plugin_does_not_break_help_or_other_commands(
    broken_runs: dict[str, Done],
) -> None:
    helped = broken_runs["help"]
    assert helped.returncode == 0
    assert helped.stderr == ""
    assert "connectors" in helped.stdout
    named = broken_runs["named"]
    assert named.stdout == ""
    assert named.stderr.startswith("flowkit: error: connector 'broken' from flowkit-broken 0.1")
    assert named.stderr.count("\n") == 1
    assert named.returncode == 2


def test_listing_with_a_broken_plugin_exits_1(broken_runs: dict[str, Done]) -> None:
    assert broken_runs["list"].returncode == 1


GREET_RECIPE = """\
flowkit: 1
name: greet-everyone
connections:
  greet:
    with: {greeting: Hi, log_file: greetings.log}
trigger:
  use: greet.hello
  with:
    names: [Ann, Bob, Cy]
    cursor: ${{ cursor }}
  key: ${{ item.id }}
  cursor: ${{ output.cursor }}
steps:
  - id: record
    use: greet.record
    with:
      text: ${{ item.text }}
"""


def test_flowkit_run_executes_a_recipe_that_uses_the_pip_installed_plugin(
    greet_site: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "greet.yaml"
    recipe.write_text(GREET_RECIPE)
    state = tmp_path / "state.db"
    args = {
        "validate": [str(FLOWKIT), "validate", str(recipe)],
        "run": [str(FLOWKIT), "run", str(recipe), "--state", str(state)],
    }
    first = run_all({"validate": args["validate"]}, greet_site)["validate"]
    assert first.returncode == 0, first.stdout + first.stderr
    ran = run_all({"run": args["run"]}, greet_site)["run"]
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "3 new item(s) of 3 listed; 3 processed: 3 done" in ran.stdout
    again = run_all({"run": args["run"]}, greet_site)["run"]
    assert again.returncode == 0 and "0 new item(s)" in again.stdout
    lines = (tmp_path / "greetings.log").read_text().splitlines()
    # items run concurrently, so the order of the lines is not fixed; each is written once
    assert sorted(line.split("\t")[-1] for line in lines) == ["Hi, Ann!", "Hi, Bob!", "Hi, Cy!"]
