"""Which steps of a definition run code on the server: the capability a definition needs.

A JavaScript step (and a `transform`, a `condition`, a template) runs in the sandbox
subprocess: no files, no network, no environment. The built-in actions do one fixed thing,
and an action the application registered is the application's own code. But a `script` runs
a shell command as the worker's user, a `function` imports and calls any Python name, and an
action nobody registered is a name some other worker may bind to anything: whoever may submit
such a definition may run code on the server. The HTTP API admits them only when the operator
said so (`durable serve --allow-code-definitions`, for admin tokens).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from ._model import BUILTIN_ACTIONS, DagDefinition, DagStep

CodeKind = Literal["script", "function", "action"]


class CodeStep(msgspec.Struct, frozen=True):
    """One step that runs code on the server: which, how, and where it was written."""

    step: str
    kind: CodeKind
    path: str  # JSON path of the field, e.g. "$.steps[2].script"
    line: int | None
    target: str  # the command, the "module:function" or the action's name

    def describe(self) -> str:
        if self.kind == "script":
            return f"step {self.step!r} runs a shell command on the server: {self.target!r}"
        if self.kind == "function":
            return f"step {self.step!r} calls the Python function {self.target!r} on the server"
        return (
            f"step {self.step!r} uses the action {self.target!r}, which this application "
            "did not register (it would run whatever a worker binds to that name)"
        )


def _field(step: DagStep, index: int, field: str) -> tuple[str, int | None]:
    spot = step.location.fields.get(field)
    if spot is not None:
        return spot.path, spot.line
    return f"$.steps[{index}].{field}", step.location.line


def code_steps(definition: DagDefinition, registered_actions: Iterable[str] = ()) -> list[CodeStep]:
    """The steps that would run code on the server (in declaration order): `script` and
    `function` steps, and actions neither built in nor in `registered_actions`."""
    allowed = BUILTIN_ACTIONS | frozenset(registered_actions)
    found: list[CodeStep] = []
    for index, step in enumerate(definition.steps):
        kind: CodeKind
        if step.script is not None:
            kind, target = "script", step.script
        elif step.function is not None:
            kind, target = "function", step.function
        elif step.action is not None and step.action not in allowed:
            kind, target = "action", step.action
        else:
            continue
        path, line = _field(step, index, kind)
        found.append(CodeStep(step.id, kind, path, line, target))
    return found
