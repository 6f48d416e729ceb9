"""Discover connector plugins through the `flowkit.connectors` entry-point group, lazily.

Built-in connectors register through the same entry points as third-party packages (see
pyproject.toml). Listing names reads distribution metadata only; a plugin module is imported
when a recipe uses it or `flowkit connectors` lists its actions. A plugin that fails to import,
exposes the wrong object, or targets another `API_VERSION` becomes a `PluginError` naming its
distribution; it never breaks other commands.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from flowkit.connectors.base import API_VERSION, Action, Connector
from flowkit.errors import PluginError

GROUP = "flowkit.connectors"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    value: str  # "module:attr"
    distribution: str  # "name version", or "?" when unknown


def _describe(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    label = f"{dist.name} {dist.version}" if dist is not None else "?"
    return PluginInfo(name=ep.name, value=ep.value, distribution=label)


class Registry:
    """The installed connectors. `extra` adds in-process connectors (tests, `flowkit test`)."""

    def __init__(self, extra: dict[str, Connector] | None = None) -> None:
        self._eps: dict[str, EntryPoint] = {}
        self._conflicts: dict[str, list[PluginInfo]] = {}
        for ep in entry_points(group=GROUP):
            if ep.name in self._eps and self._eps[ep.name].value != ep.value:
                self._conflicts.setdefault(ep.name, [_describe(self._eps[ep.name])]).append(
                    _describe(ep)
                )
                continue
            self._eps[ep.name] = ep
        self._loaded: dict[str, Connector] = dict(extra or {})
        self._failed: dict[str, PluginError] = {}

    def names(self) -> list[str]:
        return sorted(set(self._eps) | set(self._loaded))

    def info(self, name: str) -> PluginInfo | None:
        ep = self._eps.get(name)
        return _describe(ep) if ep is not None else None

    def __contains__(self, name: object) -> bool:
        return name in self._eps or name in self._loaded

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, self.names(), n=1)
        return close[0] if close else None

    def get(self, name: str) -> Connector:
        """The connector named `name`, imported on first use; raises PluginError."""
        if name in self._loaded:
            return self._loaded[name]
        if name in self._failed:
            raise self._failed[name]
        if name in self._conflicts:
            dists = ", ".join(i.distribution for i in self._conflicts[name])
            err = PluginError(
                f"connector '{name}' is registered by several packages ({dists})",
                hint="uninstall all but one of them",
            )
            self._failed[name] = err
            raise err
        ep = self._eps.get(name)
        if ep is None:
            near = self.suggest(name)
            raise PluginError(
                f"unknown connector '{name}'",
                hint=f"did you mean '{near}'?" if near else "run `flowkit connectors` to list them",
            )
        info = _describe(ep)
        try:
            obj = ep.load()
        except Exception as exc:  # any import failure of third-party code
            err = PluginError(
                f"connector '{name}' from {info.distribution} failed to load: "
                f"{type(exc).__name__}: {exc}",
                hint=f"reinstall or remove the package that provides {info.value}",
            )
            self._failed[name] = err
            raise err from exc
        if isinstance(obj, type) and issubclass(obj, Connector):
            obj = obj(name)
        if not isinstance(obj, Connector):
            err = PluginError(
                f"connector '{name}' from {info.distribution}: {info.value} is not a "
                "flowkit Connector",
            )
            self._failed[name] = err
            raise err
        if obj.api_version != API_VERSION:
            err = PluginError(
                f"connector '{name}' from {info.distribution} targets connector API "
                f"{obj.api_version}, this flowkit provides {API_VERSION}",
                hint="upgrade the plugin or flowkit so that both agree",
            )
            self._failed[name] = err
            raise err
        self._loaded[name] = obj
        return obj

    def action(self, use: str) -> tuple[Connector, Action[Any, Any]]:
        """Resolve `connector.action`; raises PluginError with a "did you mean" hint."""
        conn_name, _, action_name = use.partition(".")
        connector = self.get(conn_name)
        action = connector.actions.get(action_name)
        if action is None:
            near = difflib.get_close_matches(action_name, list(connector.actions), n=1)
            known = ", ".join(sorted(connector.actions))
            raise PluginError(
                f"connector '{conn_name}' has no action '{action_name}'",
                hint=f"did you mean '{conn_name}.{near[0]}'?" if near else f"known: {known}",
            )
        return connector, action


_default: Registry | None = None


def default_registry() -> Registry:
    global _default
    if _default is None:
        _default = Registry()
    return _default
