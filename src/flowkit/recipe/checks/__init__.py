"""Semantic checks of a recipe beyond its schema, offline and without credentials.

They run on the loaded YAML data (not only on a valid model), so that a file with a schema
mistake still gets its other problems reported in the same pass:

* step ids are unique (across `steps` and `on_failure`); `needs` name existing steps; the
  dependencies (explicit and implied by `steps.<id>` references) have no cycle;
* every `${{ }}` parses, and every name it uses exists where it is used (see
  `expressions._SCOPE_HINTS`): `steps.<id>` a step of the recipe (and a field of its
  action's output when that model is closed), `item` only with a trigger, `each`/`index`
  only in the `with` of a `for_each` step, `cursor` and `output` only in the trigger
  (`output` not in its `with`), `error` only in `on_failure`, `vars.X` declared, `secrets.X`
  declared (when the recipe declares secrets), and with `check_env` every secret and env var
  set;
* every `use:` names an installed connector action; literal inputs are validated against the
  action's `Input` model and literal connection settings against the connector's `settings`
  (values that are expressions are checked at run time); connections exist and match;
* `if`, `for_each`, `wait.until` and the trigger's expressions have the right shape.

One checker, assembled from one class per concern:

    base.py         the recipe's sections indexed once (steps by list and id, connections,
                    vars, secrets) and the helpers every check shares
    graph.py        step ids, `needs`, cycles
    connectors.py   `use:`, literal inputs and settings, connections
    expressions.py  `${{ }}` syntax, names and scopes, output fields, shapes; secrets and env
"""

from __future__ import annotations

from collections.abc import Mapping

from flowkit.connectors.registry import Registry
from flowkit.recipe import models
from flowkit.recipe.checks.connectors import _ConnectorChecks
from flowkit.recipe.checks.expressions import ALL_ROOTS, GLOBAL_ROOTS, _ExpressionChecks
from flowkit.recipe.checks.graph import _GraphChecks
from flowkit.recipe.loader import Reporter

__all__ = ["ALL_ROOTS", "GLOBAL_ROOTS", "check_recipe"]


def check_recipe(
    report: Reporter,
    recipe: models.Recipe | None,
    *,
    registry: Registry,
    check_env: bool,
    env: Mapping[str, str],
) -> None:
    """Add every semantic problem of the loaded recipe to `report`."""
    if isinstance(report.doc.data, dict):
        _Checker(report, report.doc.data, registry, check_env, env).run()


class _Checker(_GraphChecks, _ConnectorChecks, _ExpressionChecks):
    def run(self) -> None:
        self.check_ids()
        self.check_needs()
        self.check_connections()
        self.check_uses()
        self.check_expressions()
        self.check_cycles()
        if self.check_env:
            self.check_environment()
