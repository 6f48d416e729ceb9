"""`flowkit connectors`, `connectors show NAME` and `connectors docs`: what is installed.

Everything shown comes from the connectors' own models (settings, action inputs and outputs),
so the listing, `show` and the generated Markdown reference cannot drift from the code. A plugin
that fails to load is reported in one line naming its distribution; the others are still shown.
Output is sorted; rich tables on a terminal, plain aligned columns otherwise (cron, CI, pipes).
"""

from __future__ import annotations

import enum
import json
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from flowkit.connectors.base import Action, Connector, Effect
from flowkit.connectors.registry import Registry, default_registry
from flowkit.errors import ExitCode, PluginError

__all__ = ["DEFAULT_DOCS", "docs", "list_connectors", "render_reference", "show"]

DEFAULT_DOCS = Path("docs/connectors-reference.md")
BUILTIN_PREFIX = "flowkit.connectors."


# --- model introspection ----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDoc:
    name: str  # dotted for nested models: `attachments[].path`
    type: str
    required: bool
    default: str  # JSON text of the default, "" when required
    description: str
    secret: bool


def type_label(annotation: Any) -> str:
    """A short, stable, human-readable name for a type annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if origin is typing.Annotated:
        return type_label(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_label(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (list, set, frozenset, tuple, Sequence):
        return f"list[{type_label(args[0])}]" if args else "list"
    if origin in (dict, Mapping):
        return f"dict[{type_label(args[0])}, {type_label(args[1])}]" if args else "dict"
    if isinstance(annotation, type):
        if issubclass(annotation, SecretStr | SecretBytes):
            return "str (secret)"
        if issubclass(annotation, enum.Enum):
            return " | ".join(json.dumps(m.value) for m in annotation)
        if issubclass(annotation, BaseModel):
            return "object"
        return annotation.__name__.lower()  # str, int, ..., decimal, date
    return str(annotation)


def _walk(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _walk(arg)


def _is_secret(annotation: Any) -> bool:
    return any(
        isinstance(t, type) and issubclass(t, SecretStr | SecretBytes) for t in _walk(annotation)
    )


def _nested(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model inside `annotation` (and whether it sits in a list), if there is one."""
    for t in _walk(annotation):
        if isinstance(t, type) and issubclass(t, BaseModel):
            listed = any(
                typing.get_origin(u) in (list, tuple, set, frozenset) for u in _walk(annotation)
            )
            return t, listed
    return None


def _json(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except TypeError:
        return str(value)


def describe_fields(model: type[BaseModel], prefix: str = "", depth: int = 0) -> list[FieldDoc]:
    """The fields of `model` (nested models flattened as `parent[].child`), in model order,
    except that the TLS and proxy settings every HTTP connector shares come last (pydantic
    puts a base model's fields first; a reader looks for `base_url` and the key first)."""
    from flowkit.connectors.http_options import TransportSettings

    rows: list[FieldDoc] = []
    shared = TransportSettings.model_fields
    fields = sorted(model.model_fields.items(), key=lambda field: field[0] in shared)
    for name, info in fields:
        required = info.is_required()
        default = ""
        if not required:
            if info.default_factory is not None:
                default = _json(info.default_factory())  # type: ignore[call-arg]
            else:
                default = _json(info.default)
        rows.append(
            FieldDoc(
                name=prefix + name,
                type=type_label(info.annotation),
                required=required,
                default=default,
                description=" ".join((info.description or "").split()),
                secret=_is_secret(info.annotation),
            )
        )
        nested = _nested(info.annotation)
        if nested is not None and depth < 3 and nested[0] is not model:
            inner, listed = nested
            rows.extend(
                describe_fields(inner, f"{prefix}{name}{'[]' if listed else ''}.", depth + 1)
            )
    return rows


def _idempotency(action: Action[Any, Any]) -> str:
    return "-" if action.effect is Effect.READ else action.idempotency.value


def _effect_line(action: Action[Any, Any], sep: str, code: str = "") -> str:
    """`effect: write · idempotency: none · repeated automatically ...: no` (reads: the effect)."""
    effect = f"effect: {code}{action.effect.value}{code}"
    if action.effect is Effect.READ:
        return effect
    retry = "yes" if action.retry_safe else "no"
    return sep.join(
        [
            effect,
            f"idempotency: {code}{action.idempotency.value}{code}",
            f"repeated automatically after an unknown outcome: {retry}",
        ]
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# --- loading ----------------------------------------------------------------------------------


def _load(
    registry: Registry, names: list[str]
) -> tuple[list[Connector], list[tuple[str, PluginError]]]:
    loaded: list[Connector] = []
    failed: list[tuple[str, PluginError]] = []
    for name in names:
        try:
            loaded.append(registry.get(name))
        except PluginError as err:
            failed.append((name, err))
    return loaded, failed


def _builtin_names(registry: Registry) -> list[str]:
    names = []
    for name in registry.names():
        info = registry.info(name)
        if info is not None and info.value.startswith(BUILTIN_PREFIX):
            names.append(name)
    return names


def _error_line(err: PluginError) -> str:
    from flowkit.redact import redact_text

    text = err.message + (f"; {err.hint}" if err.hint else "")
    return redact_text(" ".join(text.split()))


# --- output -----------------------------------------------------------------------------------


def _use_rich() -> bool:
    return sys.stdout.isatty()


class _Printer:
    """Headings, lines and tables: rich on a terminal, plain aligned text otherwise."""

    def __init__(self) -> None:
        self.rich = _use_rich()
        self._console: Any = None
        if self.rich:
            from rich.console import Console

            self._console = Console()

    def line(self, text: str = "") -> None:
        from flowkit.redact import redact_text

        if self._console is not None:
            self._console.print(redact_text(text), markup=False, highlight=False)
        else:
            sys.stdout.write(redact_text(text) + "\n")

    def table(self, headers: list[str], rows: list[list[str]], indent: int = 0) -> None:
        from flowkit.redact import redact_text

        rows = [[redact_text(cell) for cell in row] for row in rows]
        if self._console is not None:
            from rich.table import Table
            from rich.text import Text

            table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
            for header in headers:
                table.add_column(header, overflow="fold")
            for row in rows:
                table.add_row(*(Text(cell) for cell in row))  # no markup: `list[str]` is text
            self._console.print(table)
            return
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        pad = " " * indent
        for row in [[h.upper() for h in headers], *rows]:
            cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
            sys.stdout.write(pad + "  ".join(cells).rstrip() + "\n")

    def error(self, text: str) -> None:
        sys.stderr.write(f"flowkit: error: {text}\n")


# --- commands ---------------------------------------------------------------------------------


def list_connectors(registry: Registry | None = None) -> int:
    """Table of every installed connector's actions; exit 1 if any plugin failed to load."""
    registry = registry or default_registry()
    out = _Printer()
    loaded, failed = _load(registry, registry.names())
    rows: list[list[str]] = []
    for connector in sorted(loaded, key=lambda c: c.name):
        for action_name in sorted(connector.actions):
            action = connector.actions[action_name]
            rows.append([
                connector.name, action_name, action.effect.value, _idempotency(action),
                _first_line(action.description),
            ])  # fmt: skip
    for name, _err in failed:
        rows.append([name, "-", "-", "-", "(failed to load, see below)"])
    rows.sort(key=lambda r: (r[0], r[1]))
    if rows:
        out.table(["connector", "action", "effect", "idempotency", "description"], rows)
    else:
        out.line("no connectors installed")
    for _name, err in failed:
        out.error(_error_line(err))
    return ExitCode.FAILED if failed else ExitCode.OK


def show(name: str, registry: Registry | None = None) -> int:
    """`connector` → its settings and actions; `connector.action` → its input and output."""
    registry = registry or default_registry()
    out = _Printer()
    try:
        if "." in name:
            connector, action = registry.action(name)
        else:
            connector, action = registry.get(name), None
    except PluginError as err:
        out.error(_error_line(err))
        return int(err.exit_code)
    if action is None:
        _show_connector(out, registry, connector)
    else:
        _show_action(out, connector, action)
    return ExitCode.OK


def _field_rows(model: type[BaseModel], with_default: bool = True) -> list[list[str]]:
    rows = []
    for f in describe_fields(model):
        description = f.description + (" (secret)" if f.secret and "secret" not in f.type else "")
        if with_default:
            rows.append([f.name, f.type, "required" if f.required else f.default, description])
        else:
            rows.append([f.name, f.type, description])
    return rows


def _show_connector(out: _Printer, registry: Registry, connector: Connector) -> None:
    out.line(f"{connector.name}: {_first_line(connector.description)}")
    info = registry.info(connector.name)
    if info is not None:
        out.line(f"package: {info.distribution} ({info.value})")
    if connector.docs_url:
        out.line(f"docs: {connector.docs_url}")
    out.line()
    settings = _field_rows(connector.settings)
    if settings:
        out.line("settings:")
        out.table(["setting", "type", "default", "description"], settings, indent=2)
    else:
        out.line("settings: none")
    out.line()
    out.line("actions:")
    rows = [
        [n, a.effect.value, _idempotency(a), _first_line(a.description)]
        for n, a in sorted(connector.actions.items())
    ]
    out.table(["action", "effect", "idempotency", "description"], rows, indent=2)
    out.line()
    out.line(f"details: `flowkit connectors show {connector.name}.ACTION`")


def _show_action(out: _Printer, connector: Connector, action: Action[Any, Any]) -> None:
    out.line(f"{connector.name}.{action.name}: {_first_line(action.description)}")
    out.line(_effect_line(action, "   "))
    out.line()
    inputs = _field_rows(action.Input)
    if inputs:
        out.line("input:")
        out.table(["field", "type", "default", "description"], inputs, indent=2)
    else:
        out.line("input: none")
    out.line()
    out.line("output:")
    out.table(["field", "type", "description"], _field_rows(action.Output, False), indent=2)


# --- the Markdown reference -------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _md_fields(model: type[BaseModel], with_default: bool = True) -> list[str]:
    fields = describe_fields(model)
    if not fields:
        return ["None.", ""]
    if with_default:
        lines = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    else:
        lines = ["| field | type | description |", "| --- | --- | --- |"]
    for f in fields:
        description = f.description + (" **Secret.**" if f.secret else "")
        cells = [_code(f.name), _code(_cell(f.type))]
        if with_default:
            cells.append("required" if f.required else _code(_cell(f.default)))
        cells.append(_cell(description))
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def render_reference(connectors: list[Connector]) -> str:
    """The Markdown reference for `connectors` (deterministic: sorted, no versions or dates)."""
    connectors = sorted(connectors, key=lambda c: c.name)
    lines = [
        "# Connector reference",
        "",
        "<!-- Generated by `flowkit connectors docs` from the connectors' models: do not edit.",
        "     CI checks it with `flowkit connectors docs --check`. -->",
        "",
        "Every action declares its **effect**: `read` actions run for real in a dry run, `write`",
        "and `notify` actions are shown and not sent. **Idempotency** says how a write can be",
        "repeated: `header` (the API honours the idempotency key flowkit sends), `natural`",
        "(repeating yields the same state), `none` (repeating may duplicate the effect, so flowkit",
        "does not repeat it automatically after an unknown outcome unless the step's retry sets",
        "`unsafe_writes`).",
        "",
        "| connector | actions | description |",
        "| --- | --- | --- |",
    ]
    for c in connectors:
        actions = ", ".join(f"`{n}`" for n in sorted(c.actions))
        lines.append(f"| [`{c.name}`](#{c.name}) | {actions} | {_cell(c.description)} |")
    lines.append("")
    for c in connectors:
        lines += [f"## {c.name}", ""]
        if c.description:
            lines += [_cell(c.description), ""]
        if c.docs_url:
            lines += [f"API reference: <{c.docs_url}>", ""]
        lines += ["### Settings", "", *_md_fields(c.settings)]
        for name in sorted(c.actions):
            action = c.actions[name]
            lines += [
                f"### `{c.name}.{name}`",
                "",
                *([_cell(action.description), ""] if action.description else []),
                "E" + _effect_line(action, " · ", "`")[1:],
                "",
                "Input:",
                "",
                *_md_fields(action.Input),
                "Output:",
                "",
                *_md_fields(action.Output, with_default=False),
            ]
    return "\n".join(lines).rstrip("\n") + "\n"


def docs(output: Path | None = None, check: bool = False, registry: Registry | None = None) -> int:
    """Write (or with `check`, compare) the reference of the built-in connectors."""
    registry = registry or default_registry()
    target = output or DEFAULT_DOCS
    loaded, failed = _load(registry, _builtin_names(registry))
    for _name, err in failed:
        sys.stderr.write(f"flowkit: warning: left out of the reference: {_error_line(err)}\n")
    text = render_reference(loaded)
    if check:
        try:
            current = target.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            state = "is missing" if current is None else "is out of date"
            sys.stderr.write(
                f"flowkit: error: {target} {state}; regenerate it with `flowkit connectors docs`\n"
            )
            return ExitCode.FAILED
        sys.stdout.write(f"{target} is up to date ({len(loaded)} connectors)\n")
        return ExitCode.OK
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"flowkit: error: cannot write {target}: {exc.strerror or exc}\n")
        return ExitCode.FAILED
    sys.stdout.write(f"wrote {target} ({len(loaded)} connectors)\n")
    return ExitCode.OK
