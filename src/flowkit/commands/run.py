"""`flowkit run RECIPE`: load, lock, run due items and new trigger items, summarise."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flowkit.errors import ExitCode, RecipeInvalid


def run(
    recipe: Path,
    *,
    state: Path | None = None,
    dry_run: bool = False,
    offline: bool = False,
    concurrency: int | None = None,
    wait_lock: float = 0.0,
    log_format: str = "text",
    quiet: bool = False,
    env_file: Path | None = None,
    variables: list[str] | None = None,
    limit: int | None = None,
    debug: bool = False,
) -> int:
    from flowkit import redact
    from flowkit.connectors.base import no_debug
    from flowkit.console import RunConsole
    from flowkit.engine.clock import clock_from_env
    from flowkit.engine.environment import load_environment, parse_var_overrides
    from flowkit.engine.runner import RunOptions, run_recipe
    from flowkit.recipe.loader import load_recipe
    from flowkit.state.sqlite import SqliteStateStore, default_state_path

    if offline and not dry_run:
        sys.stderr.write("flowkit: error: `--offline` only works with `--dry-run`\n")
        return ExitCode.INVALID
    try:
        loaded = load_recipe(recipe)
    except RecipeInvalid as exc:
        for problem in exc.problems:
            sys.stderr.write(problem.format() + "\n")
        sys.stderr.write(f"flowkit: {recipe}: the recipe is invalid; nothing was run\n")
        return ExitCode.INVALID
    env = load_environment(env_file)
    overrides = parse_var_overrides(variables or [])
    unknown = sorted(set(overrides) - set(loaded.recipe.vars))
    if unknown:
        sys.stderr.write(
            f"flowkit: error: --var {unknown[0]}: the recipe declares no such variable "
            f"(known: {', '.join(sorted(loaded.recipe.vars)) or 'none'})\n"
        )
        return ExitCode.INVALID
    path = state or default_state_path()
    console = RunConsole(fmt=log_format, quiet=quiet, dry_run=dry_run)

    def debug_line(line: str) -> None:
        if debug:
            sys.stderr.write(redact.redact_text(line) + "\n")

    async def main() -> int:
        store = None
        if not (dry_run and not Path(path).exists()):
            store = SqliteStateStore(path)
            await store.open()
        try:
            from flowkit.engine.dryrun import OverlayStore

            options = RunOptions(
                dry_run=dry_run,
                offline=offline,
                concurrency=concurrency,
                wait_lock=wait_lock,
                limit=limit,
                variables=overrides,
                env=env,
                clock=clock_from_env(),
                listener=console,
                debug=debug_line if debug else no_debug,
            )
            console.start()
            summary = await run_recipe(
                loaded, store if store is not None else OverlayStore(None), options
            )
            code = int(summary.exit_code)
            console.finish(summary.as_dict(), code)
            return code
        finally:
            console.stop()
            if store is not None:
                await store.close()

    return asyncio.run(main())
