"""Checks of the step graph: unique step ids, `needs` within a list, no cycle."""

from __future__ import annotations

from flowkit.graph import CycleError, order_steps, referenced_steps
from flowkit.recipe.checks.base import _LISTS, _CheckerBase, _did_you_mean


class _GraphChecks(_CheckerBase):
    """Step ids are unique, `needs` name steps of the same list, there is no cycle."""

    # -- ids, needs, cycles ---------------------------------------------------------------

    def check_ids(self) -> None:
        first_line: dict[str, int] = {}
        for name in _LISTS:
            for i, step in self.steps[name]:
                step_id = step.get("id")
                if not isinstance(step_id, str):
                    continue
                path = (name, i, "id")
                if step_id in first_line:
                    self.report.add(
                        path,
                        f"duplicate step id '{step_id}' (first on line {first_line[step_id]})",
                        "step ids must be unique across `steps` and `on_failure`",
                        rule="graph",
                    )
                    continue
                first_line[step_id] = self.report.mark(path).line
                self.ids[name][step_id] = i

    def check_needs(self) -> None:
        for name in _LISTS:
            other = "on_failure" if name == "steps" else "steps"
            for i, step in self.steps[name]:
                needs = step.get("needs")
                if not isinstance(needs, list):
                    continue
                for j, need in enumerate(needs):
                    if not isinstance(need, str) or need in self.ids[name]:
                        continue
                    path = (name, i, "needs", j)
                    if need in self.ids[other]:
                        self.report.add(
                            path,
                            f"'{need}' is in `{other}`; a step can only need steps of its own "
                            f"list (`{name}`)",
                            rule="graph",
                        )
                    else:
                        self.report.add(
                            path,
                            f"unknown step '{need}'",
                            _did_you_mean(need, list(self.ids[name]), "steps"),
                            rule="graph",
                        )

    def check_cycles(self) -> None:
        for name in _LISTS:
            ids = self.ids[name]
            deps: dict[str, set[str]] = {}
            for step_id, i in ids.items():
                step = self.steps_by_index(name, i)
                needs = step.get("needs")
                explicit = (
                    {n for n in needs if isinstance(n, str)} if isinstance(needs, list) else set()
                )
                implied = referenced_steps(
                    [step.get(k) for k in ("with", "if", "for_each", "wait")]
                )
                implied.discard(step_id)  # reported where the reference is
                deps[step_id] = explicit | implied
            try:
                order_steps(list(ids), deps)
            except CycleError as exc:
                first = ids[exc.cycle[0]]
                self.report.add((name, first), exc.message, exc.hint, rule="graph")
