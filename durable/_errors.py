"""The engine's errors. Users catch these; none of them carries a driver exception."""

from __future__ import annotations

from typing import Any

import msgspec


class ErrorInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """An exception as the log records it: never the object itself (that would need pickle)."""

    type: str
    message: str
    traceback: str = ""
    # Structured facts about the failure that expressions and tools can use: a script's
    # exit_code/stdout/stderr, an HTTP status and body.
    details: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


class DurableError(Exception):
    """Base class of the engine's errors."""


class WorkflowDefinitionError(DurableError, ValueError):
    """A workflow or step was declared wrongly (duplicate name/version, bad signature...)."""


class UnknownWorkflowError(DurableError, LookupError):
    def __init__(self, name: str, version: str | None, known: list[str]) -> None:
        what = f"{name!r}" if version is None else f"{name!r} version {version!r}"
        hint = ", ".join(known) if known else "none"
        super().__init__(f"unknown workflow {what}; registered: {hint}")
        self.name = name
        self.version = version


class RunNotFoundError(DurableError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class RunIdConflictError(DurableError):
    """start() with a run_id that already names a run of another workflow."""


class SerializationError(DurableError, TypeError):
    """A value that must be stored (input, step argument, result) is not msgspec-serializable."""


class CorruptEventError(DurableError):
    """A stored event could not be decoded. The log is left untouched."""

    def __init__(self, run_id: str, seq: int, detail: str) -> None:
        super().__init__(
            f"run {run_id!r}: event #{seq} is corrupted and cannot be decoded ({detail}); "
            "the run is left as it is: restore the database from a backup or export the "
            "intact part of the history"
        )
        self.run_id = run_id
        self.seq = seq


class NonDeterminismError(DurableError):
    """Re-executing a workflow asked for something other than what its log recorded."""

    def __init__(
        self, run_id: str, position: int, recorded: str, requested: str, where: str
    ) -> None:
        super().__init__(
            f"run {run_id!r} is not deterministic at position {position}: the log recorded "
            f"{recorded} but the code now asks for {requested} (at {where}). Keep the old code "
            "path for runs in flight, or start the change under a new workflow version"
        )
        self.run_id = run_id
        self.position = position
        self.recorded = recorded
        self.requested = requested
        self.where = where


class StepFailed(DurableError):
    """A step ran out of attempts. Raised inside the workflow at the step's call; catchable."""

    def __init__(self, step: str, position: int, attempts: int, error: ErrorInfo) -> None:
        tries = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"step {step!r} (#{position}) failed after {attempts} {tries}: {error}")
        self.step = step
        self.position = position
        self.attempts = attempts
        self.error = error


class StepTimeoutError(DurableError, TimeoutError):
    """One attempt of a step ran past its timeout and was cancelled."""


class RunFailed(DurableError):
    """Raised by RunHandle.result() when the run ended failed."""

    def __init__(self, run_id: str, error: ErrorInfo) -> None:
        super().__init__(f"run {run_id!r} failed: {error}")
        self.run_id = run_id
        self.error = error


class RunCancelled(DurableError):
    """Raised by RunHandle.result() when the run was cancelled."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} was cancelled")
        self.run_id = run_id


class ChildRunFailed(DurableError):
    """A child run the workflow awaited did not succeed (failed, cancelled or timed out)."""

    def __init__(self, run_id: str, workflow: str, status: str, error: ErrorInfo | None) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.status = status
        self.error = error
        detail = f": {error}" if error is not None else ""
        super().__init__(f"child run {run_id!r} of workflow {workflow!r} {status}{detail}")


class RunTimedOut(DurableError):
    """The error a run fails with when its deadline passes."""


class RepairError(DurableError, ValueError):
    """A fork or retry that cannot be done as asked (`durable fork`, `durable retry`); the
    message says why and what to do instead."""
