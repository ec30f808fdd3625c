"""A DAG definition together with what only Python can supply: the integration functions its
JavaScript steps may call (the Python builder's `api`), and the policy of the registry it was
registered in (which `function:` references resolve, which variables `{{ env }}` sees)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durable._policy import CodePolicy, FunctionRefused

from ._model import DagDefinition


@dataclass(frozen=True, slots=True)
class DagProgram:
    definition: DagDefinition
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    # Set by Registry.add_dag; a program never registered resolves no `function:` at all.
    policy: CodePolicy | None = None
    # The one-step DAG a queued step's instances run as (child runs: see _queued): its input
    # is what the step sees, not a run input.
    queued_step: bool = False

    def python_function(self, ref: str) -> Callable[..., Any]:
        """What a `function:` reference names, if the policy grants it (FunctionRefused)."""
        if self.policy is None:
            raise FunctionRefused(f"function {ref!r}: the workflow was not registered in an app")
        return self.policy.resolve(ref)

    def env(self) -> dict[str, str]:
        """The environment variables expressions see (`{{ env.X }}`)."""
        return {} if self.policy is None else self.policy.env()

    @property
    def base_dir(self) -> str | None:
        """Scripts and relative paths resolve against the definition file's directory."""
        file = self.definition.source.file
        return str(Path(file).resolve().parent) if file else None
