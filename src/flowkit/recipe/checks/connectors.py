"""Checks of connector use: installed actions, literal inputs and settings, connections."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from flowkit.connectors.base import Connector, Effect
from flowkit.errors import PluginError
from flowkit.expressions import has_expression
from flowkit.recipe import models
from flowkit.recipe.checks.base import _LISTS, _CheckerBase, _did_you_mean, _strings
from flowkit.recipe.yamlload import YamlPath


def _contains_expression(value: Any) -> bool:
    return any(has_expression(text) for _, text in _strings(value, ()))


class _ConnectorChecks(_CheckerBase):
    """Every `use:` is an installed action; literal values and connections fit it."""

    # -- connectors, inputs, connections ------------------------------------------------------

    def connector(self, name: str, path: YamlPath, *, key: bool = False) -> Connector | None:
        """The connector `name`, reporting a problem at `path` the first time it fails."""
        if name in self.connectors:
            return self.connectors[name]
        try:
            found: Connector | None = self.registry.get(name)
        except PluginError as exc:
            self.report.add(path, exc.message, exc.hint, rule="connector", key=key)
            found = None
        self.connectors[name] = found
        return found

    def check_connections(self) -> None:
        for name, conn in self.connections.items():
            if not isinstance(conn, dict):
                continue
            connector_name = conn.get("connector", name)
            if not isinstance(connector_name, str) or not re.match(
                r"^[a-z][a-z0-9_]*$", connector_name
            ):
                continue
            if "connector" in conn:
                connector = self.connector(connector_name, ("connections", name, "connector"))
            else:
                connector = self.connector(connector_name, ("connections", name), key=True)
            if connector is None:
                continue
            settings = conn.get("with", {})
            if isinstance(settings, dict):
                self.validate_literals(
                    connector.settings,
                    settings,
                    ("connections", name, "with"),
                    rule="settings",
                    noun=f"setting '{{}}' for connector '{connector_name}'",
                )

    def check_uses(self) -> None:
        if self.trigger is not None:
            self.check_use(("trigger",), self.trigger, trigger=True)
        for name in _LISTS:
            for i, step in self.steps[name]:
                self.check_use((name, i), step, trigger=False)

    def check_use(self, path: YamlPath, step: dict[str, Any], *, trigger: bool) -> None:
        use = step.get("use")
        if not isinstance(use, str) or not re.match(models.USE_PATTERN, use):
            return  # the schema reports it
        connector_name = use.split(".", 1)[0]
        if self.connector(connector_name, (*path, "use")) is None:
            return
        try:
            connector, action = self.registry.action(use)
        except PluginError as exc:
            self.report.add((*path, "use"), exc.message, exc.hint, rule="connector")
            return
        self.actions[path] = action
        if trigger and action.effect is not Effect.READ:
            self.report.add(
                (*path, "use"),
                f"the trigger must use a read action; '{use}' is a {action.effect.value} action",
                f"pick an action that lists items (see `flowkit connectors show {connector_name}`)",
                rule="connector",
            )
        inputs = step.get("with", {})
        if isinstance(inputs, dict):
            self.validate_literals(
                action.Input, inputs, (*path, "with"), rule="input", noun=f"input '{{}}' for {use}"
            )
        self.check_connection(path, step, use, connector)

    def check_connection(
        self, path: YamlPath, step: dict[str, Any], use: str, connector: Connector
    ) -> None:
        connector_name = use.split(".", 1)[0]
        explicit = step.get("connection")
        if isinstance(explicit, str):
            conn = self.connections.get(explicit)
            if explicit not in self.connections:
                hint = _did_you_mean(explicit, list(self.connections), "connections")
                self.report.add(
                    (*path, "connection"),
                    f"unknown connection '{explicit}'",
                    hint or "declare it under `connections:`",
                    rule="connection",
                )
            elif isinstance(conn, dict):
                other = conn.get("connector", explicit)
                if other != connector_name:
                    self.report.add(
                        (*path, "connection"),
                        f"connection '{explicit}' is for connector '{other}', but the step "
                        f"uses '{use}'",
                        rule="connection",
                    )
            return
        if connector_name in self.connections:
            return
        matches = [
            name
            for name, conn in self.connections.items()
            if isinstance(conn, dict) and conn.get("connector") == connector_name
        ]
        if len(matches) > 1:
            self.report.add(
                (*path, "use"),
                f"several connections use connector '{connector_name}' ({', '.join(matches)})",
                f"choose one with `connection: {matches[0]}`",
                rule="connection",
            )
        elif not matches and connector_name not in self.unconnected:
            self.unconnected.add(connector_name)  # reported at its first use only
            required = [
                info.alias or field
                for field, info in connector.settings.model_fields.items()
                if info.is_required()
            ]
            if required:
                self.report.add(
                    (*path, "use"),
                    f"connector '{connector_name}' needs a connection (settings: "
                    f"{', '.join(required)})",
                    f"add `connections: {{{connector_name}: {{with: {{...}}}}}}` to the recipe",
                    rule="connection",
                )

    def validate_literals(
        self,
        model: type[BaseModel],
        values: dict[str, Any],
        base: YamlPath,
        *,
        rule: str,
        noun: str,
    ) -> None:
        """Validate `values` against `model`, leaving values that are expressions to run time."""
        dynamic = _contains_expression(values)

        def skip(path: YamlPath, value: Any) -> bool:
            if isinstance(value, str) and has_expression(value):
                return True
            return dynamic and path == base  # a model-level rule may depend on an expression

        try:
            model.model_validate(values)
        except ValidationError as exc:
            self.report.validation_error(
                exc, model=model, base=base, rule=rule, subject=noun, skip=skip
            )
        except Exception as exc:  # a validator in plugin code that did not expect our data
            if not dynamic:
                self.report.add(
                    base,
                    f"{model.__name__} rejected the values: {type(exc).__name__}: {exc}",
                    rule=rule,
                )
