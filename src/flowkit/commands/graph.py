"""`flowkit graph RECIPE`: the step graph as a tree (terminal) or as a Mermaid flowchart.

The tree lists the trigger, then the steps in run order with what each waits for (`after`),
its condition, fan-out, wait and error policy, then the failure hooks. On a terminal it is
drawn with rich's Tree; otherwise (pipes, files, CI) as plain indented lines. `--format
mermaid` prints a `flowchart TD` (https://mermaid.js.org/syntax/flowchart.html) for docs
and pull requests. An invalid recipe prints its problems and exits 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from flowkit.errors import ExitCode

if TYPE_CHECKING:
    from flowkit.connectors.registry import Registry
    from flowkit.graph import StepGraph
    from flowkit.recipe.loader import LoadedRecipe
    from flowkit.recipe.models import Step

_SHOWN = 60  # characters of an expression shown in a label


def run(
    path: Path,
    *,
    fmt: str = "tree",
    registry: Registry | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Print the graph of the recipe at `path`; returns the exit code."""
    from flowkit.recipe.loader import check_path

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if fmt not in ("tree", "mermaid"):
        err.write(f"flowkit: error: unknown format '{fmt}' (use tree or mermaid)\n")
        return int(ExitCode.INVALID)
    loaded, problems = check_path(path, registry=registry)
    if loaded is None:
        err.writelines(p.format() + "\n" for p in problems)
        return int(ExitCode.INVALID)
    if fmt == "mermaid":
        out.write(mermaid(loaded))
    elif out.isatty():
        _print_rich(loaded, out)
    else:
        out.write("\n".join(tree_lines(loaded)) + "\n")
    return int(ExitCode.OK)


def _short(text: object) -> str:
    value = " ".join(str(text).split())
    return value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "..."


def describe(step: Step, graph: StepGraph) -> tuple[str, list[str]]:
    """The head line of a step (`id: use`) and its details (after, if, for_each, ...)."""
    from flowkit.recipe.durations import format_duration

    if step.wait is not None:
        if step.wait.for_ is not None:
            action = f"wait {format_duration(step.wait.for_)}"
        else:
            action = f"wait until {_short(step.wait.until)}"
    else:
        action = str(step.use)
        if step.connection:
            action += f" (connection {step.connection})"
    details: list[str] = []
    deps = graph.deps.get(step.id, frozenset())
    if deps:
        order = {s: i for i, s in enumerate(graph.order)}
        details.append("after " + ", ".join(sorted(deps, key=lambda s: order.get(s, 0))))
    if step.if_ is not None:
        details.append(f"if {_short(step.if_)}")
    if step.for_each is not None:
        details.append(f"for each of {_short(step.for_each)}")
    if step.retry is not None:
        details.append(f"retry {step.retry.attempts} attempts")
    if step.timeout is not None:
        details.append(f"timeout {format_duration(step.timeout)}")
    if step.on_error.value != "fail":
        details.append(f"on error {step.on_error.value}")
    return f"{step.id}: {action}", details


def _sections(loaded: LoadedRecipe) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    recipe = loaded.recipe
    sections: list[tuple[str, list[tuple[str, list[str]]]]] = []
    if recipe.trigger is not None:
        trigger = recipe.trigger
        details = [f"key {_short(trigger.key)}"]
        if trigger.cursor is not None:
            details.append(f"cursor {_short(trigger.cursor)}")
        sections.append(("trigger", [(str(trigger.use), details)]))
    else:
        sections.append(("trigger", [("none: runs once per invocation", [])]))
    for title, steps, graph in (
        ("steps", recipe.steps, loaded.graph),
        ("on_failure", recipe.on_failure, loaded.failure_graph),
    ):
        if not steps:
            continue
        by_id = {step.id: step for step in steps}
        sections.append((title, [describe(by_id[s], graph) for s in graph.order]))
    return sections


def tree_lines(loaded: LoadedRecipe) -> list[str]:
    """Plain indented lines: the recipe, its trigger, steps in order, failure hooks."""
    lines = [f"{loaded.recipe.name} ({loaded.path})"]
    for title, entries in _sections(loaded):
        lines.append(f"  {title}:")
        for head, details in entries:
            lines.append(f"    {head}")
            lines.extend(f"      {detail}" for detail in details)
    return lines


def _print_rich(loaded: LoadedRecipe, out: TextIO) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(f"[bold]{escape(loaded.recipe.name)}[/] ({escape(str(loaded.path))})")
    for title, entries in _sections(loaded):
        branch = root.add(f"[bold]{title}[/]")
        for head, details in entries:
            node = branch.add(escape(head))
            for detail in details:
                node.add(f"[dim]{escape(detail)}[/]")
    Console(file=out).print(root)


def _label(text: str) -> str:
    escaped = (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )
    return f'"{escaped}"'


def mermaid(loaded: LoadedRecipe) -> str:
    """A Mermaid `flowchart TD` of the trigger, the steps and the failure hooks."""
    recipe = loaded.recipe
    lines = ["flowchart TD"]
    roots_from = None
    if recipe.trigger is not None:
        lines.append(f"  trigger[[{_label('trigger: ' + recipe.trigger.use)}]]")
        roots_from = "trigger"
    for prefix, steps, graph in (
        ("s_", recipe.steps, loaded.graph),
        ("f_", recipe.on_failure, loaded.failure_graph),
    ):
        if not steps:
            continue
        by_id = {step.id: step for step in steps}
        if prefix == "f_":
            lines.append('  subgraph on_failure["on_failure"]')
        for step_id in graph.order:
            head, details = describe(by_id[step_id], graph)
            shown = [head, *(d for d in details if not d.startswith("after "))]  # edges say it
            text = "<br/>".join(_label(part)[1:-1] for part in shown)
            if by_id[step_id].wait is not None:
                lines.append(f'  {prefix}{step_id}(["{text}"])')
            else:
                lines.append(f'  {prefix}{step_id}["{text}"]')
        if prefix == "f_":
            lines.append("  end")
        for step_id in graph.order:
            deps = graph.deps.get(step_id, frozenset())
            order = {s: i for i, s in enumerate(graph.order)}
            for dep in sorted(deps, key=order.__getitem__):
                lines.append(f"  {prefix}{dep} --> {prefix}{step_id}")
            if not deps and prefix == "s_" and roots_from is not None:
                lines.append(f"  {roots_from} --> {prefix}{step_id}")
    return "\n".join(lines) + "\n"
