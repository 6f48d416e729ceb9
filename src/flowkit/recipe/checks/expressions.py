"""Checks of `${{ }}` expressions: syntax, names in scope, output fields, shapes, env."""

from __future__ import annotations

import difflib
import re
import typing
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from flowkit.expressions import (
    KNOWN_ROOTS,
    ExpressionSyntaxError,
    Reference,
    compile_template,
    has_expression,
)
from flowkit.recipe import models
from flowkit.recipe.checks.base import _LISTS, _CheckerBase, _did_you_mean, _strings
from flowkit.recipe.loader import as_model, model_at, shown, union_args
from flowkit.recipe.yamlload import YamlPath

ALL_ROOTS = KNOWN_ROOTS | {"output"}
_CONTEXTUAL = frozenset({"steps", "item", "each", "index", "cursor", "error", "output"})
GLOBAL_ROOTS = ALL_ROOTS - _CONTEXTUAL  # available wherever expressions are evaluated

_SCOPE_HINTS = {
    "item": "`item` (the trigger's current item) exists in steps and in the trigger's `key` "
    "of a recipe that has a `trigger`",
    "each": "`each` and `index` exist only in the `with` of a step that has `for_each`",
    "index": "`each` and `index` exist only in the `with` of a step that has `for_each`",
    "cursor": "`cursor` (the stored cursor) exists only in the trigger",
    "output": "`output` (the trigger action's output) exists only in the trigger's `items`, "
    "`key` and `cursor`; in steps use `steps.<id>.output`",
    "error": "`error` (the failure) exists only in `on_failure` steps",
    "steps": "step outputs can be read only in steps and `on_failure` hooks",
}
# the fields the engine puts in these names (engine/runner.py and engine/call.py)
_FIELDS = {
    "error": frozenset({"step", "message", "kind", "failures", "final"}),
    "run": frozenset({"id", "started_at", "dry_run", "recipe"}),
}


class _Scope:
    """Where an expression is evaluated: which names exist there, and which step it is in."""

    def __init__(self, roots: frozenset[str], step: tuple[str, int] | None = None) -> None:
        self.roots = roots
        self.step = step  # (list name, index) of the step the expression belongs to


class _ExpressionChecks(_CheckerBase):
    """Every `${{ }}` parses and uses names that exist where it is evaluated."""

    # -- expressions ------------------------------------------------------------------------

    def check_expressions(self) -> None:
        # variables are rendered once per run, before anything else exists
        self.expressions(("vars",), self.vars or None, GLOBAL_ROOTS - {"vars"})
        for name, conn in self.connections.items():
            if isinstance(conn, dict):
                self.expressions(("connections", name, "with"), conn.get("with"), GLOBAL_ROOTS)
        if self.trigger is not None:
            t = self.trigger
            self.expressions(("trigger", "with"), t.get("with"), GLOBAL_ROOTS | {"cursor"})
            for key, extra in (("items", {"output", "cursor"}), ("cursor", {"output", "cursor"})):
                self.single(("trigger", key), t.get(key), "a ${{ }} expression over `output`")
                self.expressions(("trigger", key), t.get(key), GLOBAL_ROOTS | extra)
            self.single(("trigger", "key"), t.get("key"), "a ${{ }} expression over `item`")
            key_roots = GLOBAL_ROOTS | {"item", "output", "cursor"}
            self.expressions(("trigger", "key"), t.get("key"), key_roots)
        for name in _LISTS:
            roots = GLOBAL_ROOTS | {"steps"}
            if self.trigger is not None:
                roots |= {"item"}
            if name == "on_failure":
                roots |= {"error"}
            for i, step in self.steps[name]:
                self.step_expressions(name, i, step, frozenset(roots))

    def step_expressions(
        self, name: str, i: int, step: dict[str, Any], roots: frozenset[str]
    ) -> None:
        path: YamlPath = (name, i)
        where = (name, i)
        fan_out = roots | {"each", "index"} if step.get("for_each") is not None else roots
        self.expressions((*path, "with"), step.get("with"), fan_out, where)
        condition = step.get("if")
        if isinstance(condition, str) and not self.is_single(condition):
            self.report.add(
                (*path, "if"),
                "`if` must be true, false or a single ${{ }} expression",
                self.wrap_hint("if", condition),
                rule="expression",
            )
        self.expressions((*path, "if"), condition, roots, where)
        items = step.get("for_each")
        if isinstance(items, str) and not self.is_single(items):
            self.report.add(
                (*path, "for_each"),
                "`for_each` must be a list or a single ${{ }} expression",
                self.wrap_hint("for_each", items),
                rule="expression",
            )
        self.expressions((*path, "for_each"), items, roots, where)
        wait = step.get("wait")
        if isinstance(wait, dict):
            until = wait.get("until")
            if isinstance(until, str) and not has_expression(until) and not _is_time(until):
                self.report.add(
                    (*path, "wait", "until"),
                    f"{shown(until)} is not a time",
                    "use a ${{ }} expression, unix seconds or ISO-8601 text such as "
                    "2026-01-31T09:00:00Z",
                    rule="expression",
                )
            self.expressions((*path, "wait", "until"), until, roots, where)

    def is_single(self, text: str) -> bool:
        try:
            return compile_template(text).is_single()
        except ExpressionSyntaxError:
            return True  # reported as a syntax error

    def wrap_hint(self, key: str, text: str) -> str | None:
        if has_expression(text):
            return "write one expression for the whole value, combining parts with operators"
        inner = text.strip()
        if inner.startswith("{{") and inner.endswith("}}"):
            inner = inner[2:-2].strip()
        return f"write {key}: ${{{{ {inner} }}}}"

    def single(self, path: YamlPath, value: Any, what: str) -> None:
        is_expression = isinstance(value, str) and re.match(models.EXPRESSION_PATTERN, value)
        if is_expression and isinstance(value, str) and not self.is_single(value):
            self.report.add(path, f"must be {what}, with nothing around it", rule="expression")

    def expressions(
        self,
        path: YamlPath,
        value: Any,
        roots: frozenset[str],
        step: tuple[str, int] | None = None,
    ) -> None:
        if value is None:
            return
        scope = _Scope(roots, step)
        for where, text in _strings(value, path):
            if not has_expression(text):
                continue
            try:
                template = compile_template(text)
            except ExpressionSyntaxError as exc:
                self.report.at_offset(where, exc.offset, exc.message, exc.hint, rule="expression")
                continue
            for ref in template.references():
                if ref.root == "env" and _has_fallback(text, ref):
                    self.env_with_fallback.add(str(ref.path[0]) if ref.path else "")
                self.check_reference(ref, scope, where)

    def check_reference(self, ref: Reference, scope: _Scope, path: YamlPath) -> None:
        root = ref.root
        name = ref.path[0] if ref.path and isinstance(ref.path[0], str) else None

        def problem(message: str, hint: str | None = None) -> None:
            self.report.at_offset(path, ref.offset, message, hint, rule="expression")

        if root not in ALL_ROOTS:
            close = difflib.get_close_matches(root, sorted(scope.roots), n=1)
            hint = f"did you mean '{close[0]}'?" if close else None
            problem(
                f"unknown name '{root}' in an expression",
                hint or "names available here: " + ", ".join(sorted(scope.roots)),
            )
        elif root not in scope.roots:
            hint = _SCOPE_HINTS.get(root)
            if root == "item" and self.trigger is None:
                hint = "`item` exists only in recipes with a `trigger`"
            problem(f"`{root}` is not available here", hint)
        elif root == "steps" and name is not None:
            self.check_step_reference(ref, name, scope, problem)
        elif root == "vars" and name is not None and name not in self.vars:
            problem(
                f"unknown variable '{name}'",
                _did_you_mean(name, list(self.vars), "vars") or "declare it under `vars:`",
            )
        elif root == "secrets" and name is not None:
            self.secret_uses.setdefault(name, (path, ref.offset))
            if self.secrets and name not in self.secrets:
                problem(
                    f"unknown secret '{name}'",
                    _did_you_mean(name, list(self.secrets), "secrets")
                    or "declare it under `secrets:`",
                )
        elif root == "env" and name is not None:
            self.env_uses.setdefault(name, (path, ref.offset))
        elif root in _FIELDS and name is not None and name not in _FIELDS[root]:
            problem(
                f"`{root}` has no field '{name}'",
                _did_you_mean(name, sorted(_FIELDS[root]), "fields"),
            )
        elif root == "output" and self.trigger is not None:
            action = self.actions.get(("trigger",))
            if action is not None:
                what = f"the output of {self.trigger.get('use')}"
                self.check_fields(action.Output, list(ref.path), what, problem)
        elif root == "item" and self.trigger is not None:
            self.check_item_fields(list(ref.path), problem)

    def check_step_reference(
        self, ref: Reference, target: str, scope: _Scope, problem: Any
    ) -> None:
        own = scope.step[0] if scope.step else "steps"
        if scope.step is not None and self.ids[own].get(target) == scope.step[1]:
            problem(
                f"step '{target}' reads its own output",
                "a step can only read the outputs of steps before it",
            )
            return
        if target in self.ids["on_failure"] and own == "steps":
            problem(f"'{target}' is an `on_failure` hook; steps cannot read its output")
            return
        index = self.ids["steps"].get(target)
        list_name = "steps"
        if index is None:
            index, list_name = self.ids["on_failure"].get(target), "on_failure"
        if index is None:
            known = list(self.ids["steps"]) + (
                list(self.ids["on_failure"]) if own == "on_failure" else []
            )
            problem(f"unknown step '{target}'", _did_you_mean(target, known, "steps"))
            return
        parts = list(ref.path[1:])
        action = self.actions.get((list_name, index))
        if action is None or len(parts) < 2 or parts[0] != "output":
            return
        step = self.steps_by_index(list_name, index)
        fields = parts[1:]
        use = step.get("use")
        if step.get("for_each") is not None:
            if isinstance(fields[0], str):
                problem(
                    f"step '{target}' runs for_each: its output is a list, not a mapping",
                    f"index it (steps.{target}.output[0].{fields[0]}) or take every element's "
                    f"field (steps.{target}.output[*].{fields[0]})",
                )
                return
            fields = fields[1:]
        self.check_fields(action.Output, fields, f"the output of {use}", problem)

    def check_item_fields(self, parts: list[str | int], problem: Any) -> None:
        """`item.x` against the element model of the trigger output's `items`, when known."""
        assert self.trigger is not None
        action = self.actions.get(("trigger",))
        items = self.trigger.get("items", "${{ output.items }}")
        if (
            action is None
            or not isinstance(items, str)
            or items.replace(" ", "") != "${{output.items}}"
        ):
            return
        field = action.Output.model_fields.get("items")
        if field is None:
            return
        element = model_at(action.Output, ("items", 0))
        if element is not None:
            self.check_fields(element, parts, f"an item of {self.trigger.get('use')}", problem)

    def check_fields(
        self, model: type[BaseModel], parts: list[str | int], what: str, problem: Any
    ) -> None:
        """Report the first field in `parts` that a closed output model does not have."""
        current: Any = model
        for part in parts:
            if isinstance(part, int):
                current = _list_element(current)
                if current is None:
                    return
                continue
            found = as_model(current)
            if found is None:
                return
            names = {info.alias or name: name for name, info in found.model_fields.items()}
            names.update({name: name for name in found.model_fields})
            if part not in names:
                if found.model_config.get("extra") != "allow":  # an open model may have more
                    problem(
                        f"'{part}' is not a field of {what} ({found.__name__})",
                        _did_you_mean(part, sorted(set(names)), "fields"),
                    )
                return
            current = found.model_fields[names[part]].annotation

    # -- secrets and environment --------------------------------------------------------------

    def check_environment(self) -> None:
        for name, declaration in self.secrets.items():
            optional = isinstance(declaration, dict) and declaration.get("required") is False
            if optional or name in self.env:  # the engine runs without an optional secret
                continue
            self.report.add(
                ("secrets", name),
                f"secret {name} is not set",
                "set it in the environment or in a .env file (see `--env-file`)",
                rule="env",
                key=True,
                position=None,
            )
        for name, (path, offset) in self.secret_uses.items():
            if self.secrets or name in self.env:  # an undeclared one is reported as unknown
                continue
            self.report.at_offset(
                path,
                offset,
                f"secret {name} is not set",
                "set it in the environment or in a .env file (see `--env-file`)",
                rule="env",
            )
        for name, (path, offset) in self.env_uses.items():
            if name not in self.env and name not in self.env_with_fallback:
                self.report.at_offset(
                    path,
                    offset,
                    f"environment variable {name} is not set",
                    "set it in the environment or in a .env file (see `--env-file`)",
                    rule="env",
                )


_FALLBACK = re.compile(r"\s*(\?\?|\|\|)")


def _has_fallback(text: str, ref: Reference) -> bool:
    """Whether `env.NAME` is directly followed by `??` or `||` (a default for an unset one)."""
    head = f"{ref.root}." + ".".join(str(p) for p in ref.path[:1])
    if not text.startswith(head, ref.offset):
        return False
    return _FALLBACK.match(text, ref.offset + len(head)) is not None


def _list_element(annotation: Any) -> Any:
    for option in union_args(annotation):
        if typing.get_origin(option) in (list, tuple):
            args = typing.get_args(option)
            return args[0] if args else None
    return None


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
