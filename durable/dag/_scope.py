"""What a DAG step sees: its dependencies' results and the scope its expressions evaluate in.

Read from the run's step reports (shared with the executor, which keeps them current), the
run's input and the definition; nothing here writes to the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._model import DagDefinition, DagStep
from ._report import StepReport, step_view


class StepScope:
    def __init__(
        self,
        definition: DagDefinition,
        owners: dict[str, str],
        reports: dict[str, StepReport],
        run_input: Any,
        env: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self.definition = definition
        self.by_id = {s.id: s for s in definition.steps}
        self.owners = owners  # body step -> its loop step
        self.reports = reports  # the executor's, updated as steps finish
        self.input = run_input
        self.env = env  # the variables the operator exposed to expressions (DagProgram.env)

    def dep_ids(self, step: DagStep) -> tuple[str, ...]:
        # A body's entry steps see what their loop step depends on.
        if not step.depends_on and step.id in self.owners:
            return self.by_id[self.owners[step.id]].depends_on
        return step.depends_on

    def deps(self, step: DagStep) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for dep in self.dep_ids(step):
            report = self.reports.get(dep)
            out[dep] = report.result if report is not None else None
        return out

    def scope(
        self, step: DagStep | None, matrix: dict[str, Any], iteration: int | None = None
    ) -> dict[str, Any]:
        views = {sid: step_view(r) for sid, r in self.reports.items()}
        context: dict[str, Any] = dict(self.input) if isinstance(self.input, dict) else {}
        context.update(views)
        return {
            "steps": views,
            "deps": self.deps(step) if step is not None else {},
            "input": self.input,
            "context": context,
            "matrix": matrix,
            "iteration": iteration,
            "config": self.definition.config,
            "env": self.env(),
        }
