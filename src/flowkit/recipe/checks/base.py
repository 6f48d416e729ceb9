"""What every check reads: the recipe's sections, indexed once, and the shared helpers."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from flowkit.connectors.base import Action, Connector
from flowkit.connectors.registry import Registry
from flowkit.recipe.loader import Reporter
from flowkit.recipe.yamlload import YamlPath

_LISTS = ("steps", "on_failure")


def _did_you_mean(name: str, choices: list[str], what: str) -> str | None:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if choices:
        return f"known {what}: " + ", ".join(sorted(choices))
    return None


def _strings(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    """(path, text) for every string in a nested value."""
    todo: list[tuple[YamlPath, Any]] = [(path, value)]
    while todo:
        where, current = todo.pop()
        if isinstance(current, str):
            yield where, current
        elif isinstance(current, dict):
            todo.extend(((*where, k), v) for k, v in reversed(current.items()))
        elif isinstance(current, list):
            todo.extend(((*where, i), v) for i, v in reversed(list(enumerate(current))))


class _CheckerBase:
    """The loaded data of one recipe and what the checks collect while they run."""

    def __init__(
        self,
        report: Reporter,
        data: dict[str, Any],
        registry: Registry,
        check_env: bool,
        env: Mapping[str, str],
    ) -> None:
        self.report = report
        self.data = data
        self.registry = registry
        self.check_env = check_env
        self.env = env
        trigger = data.get("trigger")
        self.trigger: dict[str, Any] | None = trigger if isinstance(trigger, dict) else None
        self.steps: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.ids: dict[str, dict[str, int]] = {}  # list -> id -> index (first occurrence)
        for name in _LISTS:
            raw = data.get(name)
            items = raw if isinstance(raw, list) else []
            self.steps[name] = [(i, s) for i, s in enumerate(items) if isinstance(s, dict)]
            self.ids[name] = {}
        connections = data.get("connections")
        self.connections: dict[str, Any] = connections if isinstance(connections, dict) else {}
        variables = data.get("vars")
        self.vars: dict[str, Any] = variables if isinstance(variables, dict) else {}
        secrets = data.get("secrets")
        self.secrets: dict[str, Any] = secrets if isinstance(secrets, dict) else {}
        self.actions: dict[YamlPath, Action[Any, Any]] = {}
        self.connectors: dict[str, Connector | None] = {}
        self.secret_uses: dict[str, tuple[YamlPath, int]] = {}
        self.env_uses: dict[str, tuple[YamlPath, int]] = {}
        self.env_with_fallback: set[str] = set()  # `env.X ?? default`: may stay unset
        self.unconnected: set[str] = set()

    def steps_by_index(self, name: str, index: int) -> dict[str, Any]:
        for i, step in self.steps[name]:
            if i == index:
                return step
        return {}
