"""The engine's errors. Users catch these; none of them carries a driver exception."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec.structs import force_setattr

from durable._limits import MAX_ERROR_DETAILS_BYTES, MAX_ERROR_FIELD_BYTES, cut


class ErrorInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """An exception as the log records it: never the object itself (that would need pickle).

    Bounded whatever builds it (and when an older version's oversized error is decoded): each
    text field, and each entry of `details`, is cut to MAX_ERROR_FIELD_BYTES with a marker;
    `details` as a whole to MAX_ERROR_DETAILS_BYTES. A huge exception message costs the log
    64 KiB, not its size once per copy per attempt.
    """

    type: str
    message: str
    traceback: str = ""
    # Structured facts about the failure that expressions and tools can use: a script's
    # exit_code/stdout/stderr, an HTTP status and body.
    details: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("type", "message", "traceback"):
            value = getattr(self, name)
            bounded = cut(value) if isinstance(value, str) else str(value)
            if bounded is not value:
                force_setattr(self, name, bounded)
        if self.details is not None:
            details = _bounded_details(self.details)
            if details is not self.details:
                force_setattr(self, "details", details)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


def _bounded_details(details: dict[str, Any]) -> dict[str, Any]:
    """`details` itself when it is storable and small; else each entry bounded (text cut,
    other values over the field limit replaced by a note) and entries past the total limit
    dropped, with a `cut` entry saying how many."""
    try:
        if len(msgspec.msgpack.encode(details)) <= MAX_ERROR_FIELD_BYTES:
            return details
    except (TypeError, ValueError, OverflowError, RecursionError):
        pass  # something in it cannot be stored: bound entry by entry
    out: dict[str, Any] = {}
    used = dropped = 0
    for key, value in details.items():
        entry = _bounded_entry(value)
        size = len(msgspec.msgpack.encode(entry)) + len(str(key))
        if used + size > MAX_ERROR_DETAILS_BYTES:
            dropped += 1
            continue
        out[cut(str(key), 1024)] = entry
        used += size
    if dropped:
        out["cut"] = (
            f"{dropped} more details entries were dropped: the error's details are limited "
            f"to {MAX_ERROR_DETAILS_BYTES:,} bytes"
        )
    return out


def _bounded_entry(value: Any) -> Any:
    if isinstance(value, str):
        return cut(value)
    try:
        size = len(msgspec.msgpack.encode(value))
    except (TypeError, ValueError, OverflowError, RecursionError):
        try:
            shown = repr(value)
        except Exception:
            shown = f"<a {type(value).__name__}>"
        return cut(f"[not storable: {shown}]")
    if size <= MAX_ERROR_FIELD_BYTES:
        return value
    return (
        f"[cut: a {type(value).__name__} of {size:,} bytes encoded, over the "
        f"{MAX_ERROR_FIELD_BYTES:,}-byte limit for one entry]"
    )


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
    """A value that must be stored (input, step argument, result) is not msgspec-serializable,
    or does not match the type its function declares for it."""


class InvalidInputError(SerializationError, ValueError):
    """A workflow's input does not match the annotation of its input parameter; raised by
    start() before anything is written (the HTTP API answers 422)."""


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


class UnrecordedRaceError(NonDeterminismError):
    """Workflow code raced a durable awaitable (a step, ctx.sleep, ctx.wait_for_signal, a child
    run) with asyncio.wait, asyncio.as_completed or asyncio.wait_for: which one completes first
    is not recorded, so a replay could take another path. Fatal to the run, like any
    NonDeterminismError; ctx.wait() and ctx.as_completed() race them deterministically."""

    def __init__(self, run_id: str, position: int, helper: str, where: str) -> None:
        DurableError.__init__(
            self,
            f"run {run_id!r} raced the durable command at position {position} with {helper}() "
            f"(workflow at {where}): which awaitable completes first is not recorded, so a "
            "replay or a recovery could take another path. Use ctx.wait(...) or "
            "ctx.as_completed(...), which record the outcome (timeout= included), or "
            "asyncio.gather to await them all; for a timeout on one wait, "
            "ctx.wait_for_signal(..., timeout=...) or @app.step(timeout=...)",
        )
        self.run_id = run_id
        self.position = position
        self.recorded = "no race outcome"
        self.requested = f"{helper}() over position {position}"
        self.where = where
        self.helper = helper


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


class ExternalFailed(DurableError):
    """An external wait (ctx.wait_external) was failed from outside (app.fail): `error` is
    what the failing side gave."""

    def __init__(self, name: str, error: ErrorInfo) -> None:
        self.name = name
        self.error = error
        super().__init__(f"external wait {name!r} failed: {error.type}: {error.message}")


class InvalidTokenError(DurableError, ValueError):
    """A completion token that is malformed, or names no external wait of this database."""


class ExternalAlreadySettledError(DurableError):
    """The external wait was already completed, failed or timed out (`status`), or its run
    ended: a completion counts once, and this one changed nothing."""

    def __init__(self, message: str, status: str) -> None:
        self.status = status
        super().__init__(message)


class RunTimedOut(RunFailed):
    """The run's deadline (`start(..., timeout=)`) passed: it failed, whatever it was doing.
    Its error is recorded as type "durable.RunTimedOut"; RunHandle.result() raises this."""


class DagFailed(RunFailed):
    """A DAG run ended failed: steps failed and nothing handled them. Recorded as type
    "durable.DagFailed"; `error.details` has the step counts."""


class DagPartial(RunFailed):
    """A DAG run ended `partial`: some steps failed, but the run's policy let the others
    finish. Recorded as type "durable.DagPartial"; `error.details` has the step counts (for
    the outputs of the steps that succeeded, use app.run_dag, which returns a DagResult)."""


# The engine's own recorded error types, and what RunHandle.result() raises for each.
RUN_FAILURES: dict[str, type[RunFailed]] = {
    "durable.RunTimedOut": RunTimedOut,
    "durable.DagFailed": DagFailed,
    "durable.DagPartial": DagPartial,
}


class RepairError(DurableError, ValueError):
    """A fork or retry that cannot be done as asked (`durable fork`, `durable retry`); the
    message says why and what to do instead."""


class InvalidIdError(DurableError, ValueError):
    """An id or name a user gave (a run id, a workflow name or version, a signal name...)
    breaks the one rule for ids (durable._ids.ID_RULE). Raised before anything is written."""

    def __init__(self, kind: str, value: object, problem: str, rule: str) -> None:
        text = value if isinstance(value, str) else repr(value)
        shown = repr(text[:80]) + ("…" if len(text) > 80 else "")
        super().__init__(f"invalid {kind} {shown}: it {problem}. {rule}; choose another {kind}")
        self.kind = kind
        self.value = value
        self.problem = problem


class ScheduleError(DurableError, ValueError):
    """A schedule that cannot be declared or changed as asked: a bad cron expression or
    timezone, an unknown policy or schedule, a backfill range that is wrong or too long. The
    message says what, where (which schedule), and how to fix it; nothing was written."""


class ScheduleNotFoundError(ScheduleError, LookupError):
    """No schedule of that name is in the database (the message lists those that are)."""


class QueueError(DurableError, ValueError):
    """A queue that cannot be declared as asked (a bad limit), or a start that cannot go in
    the queue it names (undeclared queue, bad priority, delay or key). The message says what,
    where and how to fix it; nothing was written."""


class QueueNotFoundError(QueueError, LookupError):
    """No queue of that name is declared in the database (the message lists those that are)."""


class DuplicateRunError(QueueError):
    """A start with a dedupe_key that an unfinished run of the same queue already holds.
    `existing_run_id` names that run; start(..., if_duplicate="return") returns its handle
    instead."""

    def __init__(self, queue: str, dedupe_key: str, existing_run_id: str) -> None:
        super().__init__(
            f"queue {queue!r} already has run {existing_run_id!r} with dedupe_key "
            f"{dedupe_key!r}, queued or running; wait for it to end, use another key, or pass "
            'if_duplicate="return" to get its handle'
        )
        self.queue = queue
        self.dedupe_key = dedupe_key
        self.existing_run_id = existing_run_id


class ApprovalError(DurableError, ValueError):
    """A decision on an agent's tool call that cannot be taken: the run has no pending request
    for that tool call id (unknown, or already decided), or the run has ended. Nothing was
    sent; the message says which and lists the calls still pending."""

    def __init__(self, run_id: str, tool_call_id: str, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.tool_call_id = tool_call_id


class EventNotSetError(DurableError, LookupError):
    """get_event() on a run that ended without setting the key: it never will."""

    def __init__(self, run_id: str, key: str, status: str, known: list[str]) -> None:
        keys = ", ".join(repr(k) for k in known) if known else "none"
        super().__init__(
            f"run {run_id!r} ended ({status}) without setting event {key!r}; "
            f"the keys it set: {keys}"
        )
        self.run_id = run_id
        self.key = key
        self.status = status


class QueryError(DurableError):
    """A query could not be answered: its handler issued a durable command (queries are
    read-only), the run is a DAG run, or the handler raised (the cause is chained)."""

    def __init__(self, run_id: str, name: str, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.name = name


class UnknownQueryError(QueryError, LookupError):
    """No handler of that name was registered (ctx.on_query) by the point the run reached."""

    def __init__(self, run_id: str, name: str, known: list[str]) -> None:
        hint = ", ".join(repr(k) for k in known) if known else "none"
        super().__init__(
            run_id,
            name,
            f"run {run_id!r} has no query handler {name!r} (registered with ctx.on_query by "
            f"the point its log reaches: {hint})",
        )
        self.known = known


class UpdateRejected(DurableError):
    """The run did not take the update (app.update): its validator raised, the workflow has no
    handler of that name, or the run ended before taking it. Nothing entered the run's log;
    `.error` says why."""

    def __init__(self, run_id: str, name: str, update_id: str, error: ErrorInfo) -> None:
        super().__init__(f"update {name!r} ({update_id}) of run {run_id!r} rejected: {error}")
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.error = error


class UpdateFailed(DurableError):
    """The update's handler raised (`.error`, as StepFailed's), or the run ended while it
    ran (error type durable.RunEnded). The update was accepted: it is in the run's log."""

    def __init__(self, run_id: str, name: str, update_id: str, error: ErrorInfo) -> None:
        super().__init__(f"update {name!r} ({update_id}) of run {run_id!r} failed: {error}")
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.error = error
