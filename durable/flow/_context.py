"""WorkflowContext: what a builder workflow's lambdas see, and what a run carries as its input.

The document's lambdas read the context two ways, and both work on the one object:

    lambda context: context.variables.get("priority") == "high"
    lambda state: state["order_id"]            # a Mapping over the variables

`initial_data` seeds the variables when the run starts. After each step its output is merged
in: a dict output's keys become variables (so `validate_order` returning {"order_valid": True}
makes `state.get("order_valid")` true); any other output is stored under the step's id.
Every output is also kept by step id in `results`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorkflowContext(Mapping[str, Any]):
    workflow_id: str = ""
    user_context: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    initial_data: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("user_context", "variables", "metadata", "initial_data", "results"):
            value = getattr(self, name)
            if value is None:
                setattr(self, name, {})
            elif not isinstance(value, Mapping):
                raise TypeError(
                    f"WorkflowContext {name} must be a dict, not {type(value).__name__}"
                )
            else:
                setattr(self, name, dict(value))

    # -- the Mapping over the variables (the document's `state`) -----------------------------

    def __getitem__(self, key: str) -> Any:
        if key in self.variables:
            return self.variables[key]
        return self.initial_data[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.variables
        yield from (k for k in self.initial_data if k not in self.variables)

    def __len__(self) -> int:
        return len(self.variables.keys() | self.initial_data.keys())

    @property
    def data(self) -> dict[str, Any]:
        """The variables (the document's logger reads `state.data`)."""
        return self.variables

    # -- the run's input and output ------------------------------------------------------------

    def record(self, step_id: str, output: Any) -> None:
        """Merge a finished step's output (see the module's docstring)."""
        self.results[step_id] = output
        if isinstance(output, Mapping) and all(isinstance(k, str) for k in output):
            self.variables.update(output)
        else:
            self.variables[step_id] = output

    def to_payload(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "user_context": self.user_context,
            "variables": self.variables,
            "metadata": self.metadata,
            "initial_data": self.initial_data,
            "results": self.results,
        }

    @classmethod
    def from_payload(cls, payload: Any) -> WorkflowContext:
        if not isinstance(payload, Mapping):
            raise TypeError(
                "a builder workflow's input is a WorkflowContext (or a dict of its fields: "
                f"workflow_id, user_context, variables, metadata, initial_data), not "
                f"{type(payload).__name__}"
            )
        known = {"workflow_id", "user_context", "variables", "metadata", "initial_data", "results"}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise TypeError(
                f"unknown WorkflowContext field(s) {', '.join(map(repr, unknown))}; "
                f"expected some of {', '.join(sorted(known))}"
            )
        return cls(**{k: v for k, v in payload.items()})

    def snapshot(self) -> WorkflowContext:
        """A copy a parallel branch works on: branches don't see each other's outputs."""
        return WorkflowContext(
            workflow_id=self.workflow_id,
            user_context=dict(self.user_context),
            variables=dict(self.variables),
            metadata=dict(self.metadata),
            initial_data=dict(self.initial_data),
            results=dict(self.results),
        )
