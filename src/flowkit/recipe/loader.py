"""Load and validate a recipe file; every problem becomes `file:line:col: message` + hint.

One loader for `validate`, `run`, `graph` and `test`: what validates is what runs. The file is
read with the commerce-safe YAML loader (`yamlload`), validated against the pydantic models
(`models`), then checked semantically (`checks`: step ids, needs, cycles, expressions,
connectors, inputs, connections, secrets). Pydantic errors are mapped back to source marks:
an unknown key points at the key (with "did you mean"), a missing key at its parent mapping,
a wrong value at the value. All problems of a file are reported at once, sorted by line.

Pydantic's error list format: https://docs.pydantic.dev/latest/errors/validation_errors/
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flowkit.connectors.registry import Registry, default_registry
from flowkit.errors import Problem, RecipeInvalid
from flowkit.graph import CycleError, StepGraph, build_failure_graph, build_graph
from flowkit.recipe import models
from flowkit.recipe.models import Recipe
from flowkit.recipe.yamlload import Mark, YamlDocument, YamlPath, load_yaml, read_source

__all__ = [
    "LoadedRecipe",
    "Reporter",
    "check_path",
    "check_source",
    "load_recipe",
    "render_path",
]


@dataclass(frozen=True)
class LoadedRecipe:
    """A recipe that passed every check, with its step graphs and the hash of its bytes."""

    recipe: Recipe
    path: Path
    source_hash: str  # sha256 of the file's bytes, hex
    graph: StepGraph
    failure_graph: StepGraph


def load_recipe(
    path: Path | str,
    *,
    registry: Registry | None = None,
    check_env: bool = False,
    env: Mapping[str, str] | None = None,
) -> LoadedRecipe:
    """Load and check a recipe; raises RecipeInvalid with every problem found."""
    loaded, problems = check_path(path, registry=registry, check_env=check_env, env=env)
    if loaded is None:
        raise RecipeInvalid(problems)
    return loaded


def check_path(
    path: Path | str,
    *,
    registry: Registry | None = None,
    check_env: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[LoadedRecipe | None, list[Problem]]:
    """The loaded recipe (None when there are problems) and the problems, sorted."""
    path = Path(path)
    try:
        data = read_source(path)
    except RecipeInvalid as exc:
        return None, exc.problems
    recipe, problems = check_source(
        data, str(path), registry=registry, check_env=check_env, env=env
    )
    if recipe is None:
        return None, problems
    try:
        graph, failure_graph = build_graph(recipe), build_failure_graph(recipe)
    except CycleError as exc:  # the checks report cycles; this is only a safety net
        return None, [Problem(str(path), 1, 1, exc.message, exc.hint, rule="graph")]
    loaded = LoadedRecipe(
        recipe=recipe,
        path=path,
        source_hash=hashlib.sha256(data).hexdigest(),
        graph=graph,
        failure_graph=failure_graph,
    )
    return loaded, []


def check_source(
    source: bytes | str,
    file: str,
    *,
    registry: Registry | None = None,
    check_env: bool = False,
    env: Mapping[str, str] | None = None,
) -> tuple[Recipe | None, list[Problem]]:
    """Check recipe text; the model when there is no problem, and the sorted problems."""
    from flowkit.recipe import checks  # checks builds on this module's Reporter

    try:
        doc = load_yaml(source, file)
    except RecipeInvalid as exc:
        return None, exc.problems
    report = Reporter(file, doc)
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(doc.data)
    except ValidationError as exc:
        report.validation_error(exc, model=Recipe)
    checks.check_recipe(
        report,
        recipe,
        registry=registry if registry is not None else default_registry(),
        check_env=check_env,
        env=os.environ if env is None else env,
    )
    problems = report.sorted()
    return (recipe if not problems else None), problems


# -- problems at source positions -----------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def render_path(path: YamlPath) -> str:
    """`steps[2].with.to` for ("steps", 2, "with", "to")."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def shown(value: Any, limit: int = 40) -> str:
    """A value quoted for a message, shortened."""
    text = f"'{value}'" if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


@dataclass
class Reporter:
    """Collects the problems of one file, placing each at the source mark of a data path."""

    file: str
    doc: YamlDocument
    problems: list[Problem] = field(default_factory=list)

    def value_at(self, path: YamlPath) -> Any:
        """The loaded value at `path`, or None when the path does not exist."""
        current: Any = self.doc.data
        for part in path:
            found, current = _child(current, part)
            if not found:
                return None
        return current

    def mark(self, path: YamlPath, *, key: bool = False) -> Mark:
        if key and path in self.doc.key_marks:
            return self.doc.key_marks[path]
        return self.doc.mark(path)

    def add(
        self,
        path: YamlPath,
        message: str,
        hint: str | None = None,
        *,
        rule: str,
        key: bool = False,
        position: tuple[int, int] | None = None,
    ) -> None:
        """A problem at `path` (its key with `key=True`), prefixed with the rendered path."""
        if position is None:
            position = _pos(self.mark(path, key=key))
        line, col = position
        where = render_path(path)
        text = f"{where}: {message}" if where else message
        self.problems.append(Problem(self.file, line, col, text, hint, rule=rule))

    def at_offset(
        self, path: YamlPath, offset: int, message: str, hint: str | None = None, *, rule: str
    ) -> None:
        """A problem at character `offset` of the string at `path` (exact when cheap)."""
        value = self.value_at(path)
        position = None
        if isinstance(value, str) and path in self.doc.marks:
            position = self.doc.marks[path].locate(value, offset)
        self.add(path, message, hint, rule=rule, position=position)

    def sorted(self) -> list[Problem]:
        unique = {(p.line, p.col, p.message): p for p in self.problems}
        return sorted(unique.values())

    def validation_error(
        self,
        exc: ValidationError,
        *,
        model: type[BaseModel],
        base: YamlPath = (),
        rule: str = "schema",
        subject: str | None = None,
        skip: Callable[[YamlPath, Any], bool] | None = None,
    ) -> None:
        """Map pydantic errors of `model` validating the data at `base` to problems.

        `subject` names the keys in messages about unknown and missing ones, with `{}` for
        the key ("input '{}' for stripe.create_charge"; default "key '{}'");
        `skip(path, value)` drops errors about a value (used for `${{ }}` expressions, which
        are checked at run time).
        """
        base_value = self.value_at(base)
        entries: list[tuple[YamlPath, str | None, ErrorDetails]] = []
        for error in exc.errors(include_url=False):
            path, missing = _resolve(base_value, tuple(error["loc"]), error["type"])
            entries.append(((*base, *path), missing, error))
        deeper = [p for p, _, _ in entries]
        grouped: dict[tuple[YamlPath, str | None], list[ErrorDetails]] = {}
        for path, missing, error in entries:
            if _is_type_error(error["type"]) and any(
                len(other) > len(path) and other[: len(path)] == path for other in deeper
            ):
                continue  # another union member got further: its error is the relevant one
            if skip is not None and missing is None and skip(path, self.value_at(path)):
                continue
            grouped.setdefault((path, missing), []).append(error)
        for (path, missing), errors in grouped.items():
            self._report(path, missing, errors, model, base, rule, subject)

    def _report(
        self,
        path: YamlPath,
        missing: str | None,
        errors: list[ErrorDetails],
        model: type[BaseModel],
        base: YamlPath,
        rule: str,
        subject: str | None,
    ) -> None:
        error = errors[0]
        kind = error["type"]
        noun = subject or "key '{}'"
        if kind == "missing" and missing is not None:
            hint = (
                "add `flowkit: 1` (the recipe format version) at the top"
                if (not path and missing == "flowkit")
                else None
            )
            self.add(path, f"missing required {noun.format(missing)}", hint, rule=rule)
            return
        if kind == "extra_forbidden" and path:
            name = str(path[-1])
            fields = _field_names(model_at(model, path[len(base) : -1]))
            self.add(
                path[:-1],
                f"unknown {noun.format(name)}",
                _did_you_mean(name, fields),
                rule=rule,
                position=_pos(self.mark(path, key=True)),  # at the key, named by its parent
            )
            return
        message, hint = _friendly(errors, path)
        if kind == "value_error" and path and path[-1] in ("connections", "secrets", "vars"):
            bad = re.match(r"'(.*)' is not a valid name", message)
            if bad and (*path, bad.group(1)) in self.doc.key_marks:
                self.add(
                    path,
                    message,
                    hint,
                    rule=rule,
                    position=_pos(self.mark((*path, bad.group(1)), key=True)),
                )
                return
        self.add(path, message, hint, rule=rule)


def _pos(mark: Mark) -> tuple[int, int]:
    return mark.line, mark.col


def _child(value: Any, part: Any) -> tuple[bool, Any]:
    """(True, value[part]) when `part` is a key of a mapping or an index of a list."""
    if isinstance(value, dict) and isinstance(part, str) and part in value:
        return True, value[part]
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return True, value[part]
    return False, None


def _resolve(data: Any, loc: tuple[Any, ...], kind: str) -> tuple[YamlPath, str | None]:
    """The data path of a pydantic `loc` (union member tags dropped) and a missing key name."""
    path: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        found, child = _child(current, part)
        if found:
            path.append(part)
            current = child
        elif i == len(loc) - 1 and kind == "missing" and isinstance(part, str):
            return tuple(path), part
        elif i == len(loc) - 1 and kind == "extra_forbidden":
            path.append(str(part))
        # else: a union member tag such as 'str' or 'Secret': not part of the data
    return tuple(path), None


def _is_type_error(kind: str) -> bool:
    return kind.endswith("_type") or kind in {"none_required", "bool_parsing", "literal_error"}


# friendly messages for the recipe format's patterns, by the name of the field
_PATTERNS: dict[str, tuple[str, str, str]] = {
    "id": (
        models.ID_PATTERN,
        "{} is not a valid step id",
        "use lowercase letters, digits and `_`, starting with a letter, e.g. create_invoice",
    ),
    "name": (
        models.NAME_PATTERN,
        "{} is not a valid recipe name",
        "use lowercase letters, digits, `-`, `_` and `.`, e.g. invoice-on-payment",
    ),
    "use": (
        models.USE_PATTERN,
        "{} is not a connector action",
        "write `connector.action` in lowercase, e.g. stripe.list_charges",
    ),
    "connector": (
        r"^[a-z][a-z0-9_]*$",
        "{} is not a valid connector name",
        "use lowercase letters, digits and `_`, e.g. stripe",
    ),
    "expression": (
        models.EXPRESSION_PATTERN,
        "{} is not a ${{{{ }}}} expression",
        "write a single expression, e.g. ${{ item.id }}",
    ),
}
_SCALARS = (str, int, float, bool, type(None))
_SECRET_NAME = re.compile(r"(key|token|secret|password|passwd|pass)$", re.IGNORECASE)


def _friendly(errors: list[ErrorDetails], path: YamlPath) -> tuple[str, str | None]:
    """One message (and hint) for the errors pydantic gave about one value."""
    first = errors[0]
    kind = first["type"]
    value = first.get("input")
    if kind == "string_pattern_mismatch":
        pattern = (first.get("ctx") or {}).get("pattern", "")
        field = path[-1] if path and isinstance(path[-1], str) else ""
        for name in (field, "expression"):
            expected, message, hint = _PATTERNS.get(name, ("", "", ""))
            if expected != pattern:
                continue
            if name == "expression" and isinstance(value, str):
                hint = f"write ${{{{ {value.strip()} }}}}"
            return message.format(shown(value)), hint
    if kind == "literal_error" and path == ("flowkit",):
        if isinstance(value, str) and value.strip() == "1":
            return "the format version must be the number 1, not text", "write `flowkit: 1`"
        return (
            f"unsupported recipe format version {shown(value)}",
            "this flowkit reads format 1 (`flowkit: 1`)",
        )
    messages: list[str] = []
    for error in errors:
        text = _clean(error["msg"])
        if text not in messages:
            messages.append(text)
    if len(messages) > 1 and all(m.startswith("Input should be ") for m in messages):
        tails = [m[len("Input should be ") :] for m in messages]
        messages = ["Input should be " + ", ".join(tails[:-1]) + " or " + tails[-1]]
    message = "; ".join(messages)
    secret = any(isinstance(p, str) and _SECRET_NAME.search(p) for p in path)
    if kind != "value_error" and isinstance(value, _SCALARS) and not secret:
        message += f" (got {shown(value)})"
    return message, None


def _clean(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    message = re.sub(r"a valid dictionary or instance of \w+", "a mapping", message)
    message = message.replace("a valid dictionary", "a mapping")
    message = message.replace("Input should be None", "Input should be null")
    return message.replace(", unable to interpret input", "")


def _did_you_mean(name: str, choices: list[str]) -> str | None:
    if not choices:
        return None
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed keys: " + ", ".join(choices)


def _field_names(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def model_at(model: type[BaseModel], path: YamlPath) -> type[BaseModel] | None:
    """The pydantic model describing the mapping at `path` below `model`, if known."""
    annotation: Any = model
    for part in path:
        annotation = step_into(annotation, part)
        if annotation is None:
            return None
    found = as_model(annotation)
    return found


def as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in union_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def union_args(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return union_args(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def step_into(annotation: Any, part: str | int) -> Any:
    for option in union_args(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel) and isinstance(part, str):
            for name, info in option.model_fields.items():
                if part in (name, info.alias):
                    return info.annotation
            return None
        origin = typing.get_origin(option)
        args = typing.get_args(option)
        if origin is list and isinstance(part, int) and args:
            return args[0]
        if origin is dict and isinstance(part, str) and len(args) == 2:
            return args[1]
    return None
