"""The `flowkit` command line: parse options, call `commands.<verb>.run(...)`, exit with its code.

Only typer is imported at module level so that `flowkit --help` stays fast; each command imports
its implementation lazily. Expected errors (`FlowkitError`) print one line and exit with their
documented code; unexpected ones print one line, write the traceback to a log file and exit 3,
unless `--debug` is given. Ctrl-C exits 130.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from flowkit import __version__

app = typer.Typer(
    name="flowkit",
    help="Run declarative YAML recipes for a shop's back office, exactly once per item.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,  # plain help: `flowkit --help` must not import rich
)
runs_app = typer.Typer(
    help="Run history: list runs and show one in detail.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
items_app = typer.Typer(
    help="Failed and waiting items: list them and retry.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
new_app = typer.Typer(
    help="Scaffold a recipe or a connector plugin.", no_args_is_help=True, rich_markup_mode=None
)
connectors_app = typer.Typer(help="Installed connectors and their actions.", rich_markup_mode=None)
app.add_typer(runs_app, name="runs")
app.add_typer(items_app, name="items")
app.add_typer(new_app, name="new")
app.add_typer(connectors_app, name="connectors")

_debug = False


class ValidateFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"


class GraphFormat(str, Enum):
    tree = "tree"
    mermaid = "mermaid"


class LogFormat(str, Enum):
    text = "text"
    json = "json"


class ItemState(str, Enum):
    failed = "failed"
    waiting = "waiting"
    pending = "pending"
    done = "done"


StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        envvar="FLOWKIT_STATE",
        help="State store file (default: $XDG_STATE_HOME/flowkit/state.db).",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flowkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    """flowkit: back-office recipes from cron, exactly once per item."""
    global _debug
    _debug = debug


def _exit(code: int) -> None:
    raise typer.Exit(code)


@app.command()
def validate(
    paths: Annotated[list[str], typer.Argument(help="Recipe files, directories or globs.")],
    format: Annotated[
        ValidateFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ValidateFormat.text,
    check_env: Annotated[
        bool, typer.Option("--check-env", help="Report secrets/env vars that are not set.")
    ] = False,
    env_file: Annotated[
        Path | None, typer.Option("--env-file", help="A .env file to read variables from.")
    ] = None,
) -> None:
    """Check recipes offline: YAML, schema, connectors, inputs, expressions, graph."""
    from flowkit.commands import validate as cmd

    _exit(cmd.run(paths, fmt=format.value, check_env=check_env, env_file=env_file))


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of the recipe format (for editors)."""
    from flowkit.commands import schema as cmd

    _exit(cmd.run(output=output))


@app.command()
def graph(
    recipe: Annotated[Path, typer.Argument(help="The recipe file.")],
    format: Annotated[GraphFormat, typer.Option("--format", "-f")] = GraphFormat.tree,
) -> None:
    """Show a recipe's step graph as a tree or as Mermaid."""
    from flowkit.commands import graph as cmd

    _exit(cmd.run(recipe, fmt=format.value))


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="The recipe file.")],
    state: StateOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run reads, show writes without sending them.")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="With --dry-run: simulate reads too.")
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Items processed at once (default: the recipe's `concurrency`, else 8).",
        ),
    ] = None,
    wait_lock: Annotated[
        float,
        typer.Option("--wait-lock", min=0, help="Wait this many seconds for another run."),
    ] = 0.0,
    log_format: Annotated[LogFormat, typer.Option("--log-format")] = LogFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    env_file: Annotated[
        Path | None, typer.Option("--env-file", help="A .env file (default: ./.env if present).")
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="Override a variable: NAME=VALUE.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Process at most this many items.")
    ] = None,
) -> None:
    """Run a recipe: due waits first, then new items from the trigger."""
    from flowkit.commands import run as cmd

    _exit(
        cmd.run(
            recipe,
            state=state,
            dry_run=dry_run,
            offline=offline,
            concurrency=concurrency,
            wait_lock=wait_lock,
            log_format=log_format.value,
            quiet=quiet,
            env_file=env_file,
            variables=var or [],
            limit=limit,
            debug=_debug,
        )
    )


@runs_app.command("list")
def runs_list(
    state: StateOpt = None,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Only this recipe.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
) -> None:
    """List recent runs."""
    from flowkit.commands import runs as cmd

    _exit(cmd.list_runs(state=state, recipe=recipe, limit=limit))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix), or 'last'.")],
    state: StateOpt = None,
) -> None:
    """Show one run: per item and step, status, attempts and errors."""
    from flowkit.commands import runs as cmd

    _exit(cmd.show_run(run_id, state=state))


@items_app.command("list")
def items_list(
    state: StateOpt = None,
    recipe: Annotated[str | None, typer.Option("--recipe")] = None,
    status: Annotated[ItemState | None, typer.Option("--status")] = None,
) -> None:
    """List items (by default the failed and waiting ones)."""
    from flowkit.commands import items as cmd

    _exit(cmd.list_items(state=state, recipe=recipe, status=status.value if status else None))


@items_app.command("retry")
def items_retry(
    recipe: Annotated[str, typer.Argument(help="The recipe name.")],
    keys: Annotated[list[str] | None, typer.Argument(help="Item keys (omit with --all).")] = None,
    all_items: Annotated[bool, typer.Option("--all", help="Retry every failed item.")] = False,
    state: StateOpt = None,
) -> None:
    """Queue failed items to be tried again by the next run."""
    from flowkit.commands import items as cmd

    _exit(cmd.retry_items(recipe, keys=keys or [], all_items=all_items, state=state))


@connectors_app.callback(invoke_without_command=True)
def connectors_list(ctx: typer.Context) -> None:
    """List installed connectors and their actions."""
    if ctx.invoked_subcommand is None:
        from flowkit.commands import connectors as cmd

        _exit(cmd.list_connectors())


@connectors_app.command("show")
def connectors_show(
    name: Annotated[str, typer.Argument(help="A connector or connector.action.")],
) -> None:
    """Show a connector's settings or an action's inputs and outputs."""
    from flowkit.commands import connectors as cmd

    _exit(cmd.show(name))


@connectors_app.command("docs")
def connectors_docs(
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the file is not up to date.")
    ] = False,
) -> None:
    """Generate the connector reference (Markdown) from the models."""
    from flowkit.commands import connectors as cmd

    _exit(cmd.docs(output=output, check=check))


@new_app.command("recipe")
def new_recipe(
    name: Annotated[str, typer.Argument(help="Recipe name, e.g. invoice-on-payment.")],
    template: Annotated[
        str | None, typer.Option("--from", help="Template: blank or a shipped recipe name.")
    ] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Where to write it.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a new recipe from a template; the result validates."""
    from flowkit.commands import new as cmd

    _exit(cmd.new_recipe(name, template=template, directory=directory, force=force))


@new_app.command("connector")
def new_connector(
    name: Annotated[str, typer.Argument(help="Connector name, e.g. mystore.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the package.")] = Path(
        "."
    ),
    force: Annotated[bool, typer.Option("--force")] = False,
) -> None:
    """Create a connector plugin package: pyproject, module, test, README."""
    from flowkit.commands import new as cmd

    _exit(cmd.new_connector(name, directory=directory, force=force))


@app.command()
def sandbox(
    seed: Annotated[int, typer.Option("--seed", min=0, help="Demo records per API.")] = 3,
    port: Annotated[
        int | None, typer.Option("--port", help="First port (default: free ports).")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option("--env-file", help="Also write the variables to this file.")
    ] = None,
) -> None:
    """Serve local stand-ins of the store, payment, accounting and mail APIs."""
    from flowkit.commands import sandbox as cmd

    _exit(cmd.run(seed=seed, port=port, env_file=env_file))


@app.command("test")
def test_cmd(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Test files or directories (*.test.yaml).")
    ] = None,
) -> None:
    """Run recipe tests offline: fixtures for reads, expected writes, a controlled clock."""
    from flowkit.commands import test as cmd

    _exit(cmd.run(paths or ["."]))


@app.command()
def quickstart(
    state: Annotated[
        Path | None,
        typer.Option(
            "--state", help="State store file (default: .flowkit/quickstart.db, made anew)."
        ),
    ] = None,
) -> None:
    """Start the sandbox, run the invoice recipe against it, and explain the result."""
    from flowkit.commands import quickstart as cmd

    _exit(cmd.run(state=state))


def _report_crash(exc: BaseException) -> int:
    import tempfile
    import time
    import traceback

    log_dir = Path(os.environ.get("FLOWKIT_LOG_DIR", tempfile.gettempdir()))
    path = log_dir / f"flowkit-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(exc))
    try:
        from flowkit.redact import redact_text

        text = redact_text(text)
        path.write_text(text, encoding="utf-8")
        where = f"the traceback is in {path}"
    except Exception:
        where = "run again with `--debug` to see the traceback"
    sys.stderr.write(
        f"flowkit: internal error: {type(exc).__name__}: {exc} ({where}; please report it)\n"
    )
    return 3


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    from flowkit.errors import FlowkitError

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="flowkit", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except FlowkitError as err:
        if debug:
            raise
        from flowkit.redact import redact_text

        sys.stderr.write(f"flowkit: error: {redact_text(str(err))}\n")
        if err.hint:
            sys.stderr.write(f"  hint: {redact_text(err.hint)}\n")
        sys.exit(int(err.exit_code))
    except KeyboardInterrupt:
        sys.stderr.write("flowkit: interrupted\n")
        sys.exit(130)
    except Exception as exc:
        if isinstance(exc, typer.Abort):
            sys.stderr.write("flowkit: interrupted\n")
            sys.exit(130)
        if isinstance(exc, typer.TyperException):
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            else:
                sys.stderr.write(f"flowkit: error: {exc.format_message()}\n")
            sys.exit(exc.exit_code)
        if debug:
            raise
        sys.exit(_report_crash(exc))
    sys.exit(code if isinstance(code, int) else 0)
