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
        given: dict[str, Any] | None = None,
    ) -> None:
        self.definition = definition
        self.by_id = {s.id: s for s in definition.steps}
        self.owners = owners  # body step -> its loop step
        self.reports = reports  # the executor's, updated as steps finish
        self.input = run_input
        self.env = env  # the variables the operator exposed to expressions (DagProgram.env)
        # A queued step's child run (see _queued): what its parent's step saw, as recorded
        # in the child's input (input, steps, deps, http, matrix, iteration).
        self.given = given
        if given is not None:
            self.input = given.get("input")

    def place(
        self, matrix: dict[str, Any], iteration: int | None
    ) -> tuple[dict[str, Any], int | None]:
        """The instance's matrix values and iteration (a queued child's: its parent's)."""
        if self.given is None:
            return matrix, iteration
        return self.given.get("matrix") or {}, self.given.get("iteration")

    def http_results(self, step: DagStep) -> dict[str, bool]:
        """Dependency id -> it is an http.request step (its data is its response body)."""
        if self.given is not None:
            return dict(self.given.get("http") or {})
        return {d: self.by_id[d].action == "http.request" for d in self.dep_ids(step)}

    def dep_ids(self, step: DagStep) -> tuple[str, ...]:
        # A body's entry steps see what their loop step depends on.
        if not step.depends_on and step.id in self.owners:
            return self.by_id[self.owners[step.id]].depends_on
        return step.depends_on

    def deps(self, step: DagStep) -> dict[str, Any]:
        if self.given is not None:
            return dict(self.given.get("deps") or {})
        out: dict[str, Any] = {}
        for dep in self.dep_ids(step):
            report = self.reports.get(dep)
            out[dep] = report.result if report is not None else None
        return out

    def scope(
        self, step: DagStep | None, matrix: dict[str, Any], iteration: int | None = None
    ) -> dict[str, Any]:
        views = {sid: step_view(r) for sid, r in self.reports.items()}
        if self.given is not None:
            views = dict(self.given.get("steps") or {})
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
