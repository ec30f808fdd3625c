"""The engine: events, the replayer (a pure fold), the executor, the worker, the client.

The names below are loaded on first use (PEP 562), so that `import durable.cli` or reading one
error class does not import the worker, the DAG interpreter and every storage backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable._lazy import lazy_names

if TYPE_CHECKING:
    from durable._approvals import Approval
    from durable._client import Client, RunHandle
    from durable._codec import decode_value, encode_value
    from durable._engine import URL_ENV, AppLike, Engine, resolve_url
    from durable._errors import (
        ApprovalError,
        ChildRunFailed,
        CorruptEventError,
        DagFailed,
        DagPartial,
        DuplicateRunError,
        DurableError,
        ErrorInfo,
        InvalidIdError,
        InvalidInputError,
        NonDeterminismError,
        QueueError,
        RepairError,
        RunCancelled,
        RunFailed,
        RunIdConflictError,
        RunNotFoundError,
        RunTimedOut,
        ScheduleError,
        SerializationError,
        StepFailed,
        StepTimeoutError,
        UnknownWorkflowError,
        UnrecordedRaceError,
        UpdateFailed,
        UpdateRejected,
        WorkflowDefinitionError,
    )
    from durable._events import AnyEvent, Event, LoggedEvent, decode_record
    from durable._options import WorkerOptions
    from durable._replay import Divergence, ReplayReport, replay, state_at
    from durable._state import RunState, StepState, apply, fold
    from durable._usage import RunUsage, StepUsage
    from durable._views import RunInfo, RunSummary, StepInfo
    from durable._worker import Worker
    from durable.interact._updates import Update, UpdateInfo
    from durable.runtime._context import Context, StepContext, current_step
    from durable.runtime._registry import Registry, RetryPolicy, Step, StepDef, WorkflowDef
    from durable.runtime._select import AsCompleted, Selected

# Where each public name lives.
_WHERE = {
    "Approval": "durable._approvals",
    "Client": "durable._client",
    "RunHandle": "durable._client",
    "decode_value": "durable._codec",
    "encode_value": "durable._codec",
    "Context": "durable.runtime._context",
    "StepContext": "durable.runtime._context",
    "current_step": "durable.runtime._context",
    "URL_ENV": "durable._engine",
    "AppLike": "durable._engine",
    "Engine": "durable._engine",
    "resolve_url": "durable._engine",
    "ApprovalError": "durable._errors",
    "ChildRunFailed": "durable._errors",
    "CorruptEventError": "durable._errors",
    "DagFailed": "durable._errors",
    "DagPartial": "durable._errors",
    "DurableError": "durable._errors",
    "ErrorInfo": "durable._errors",
    "InvalidIdError": "durable._errors",
    "InvalidInputError": "durable._errors",
    "NonDeterminismError": "durable._errors",
    "RepairError": "durable._errors",
    "RunCancelled": "durable._errors",
    "RunFailed": "durable._errors",
    "RunIdConflictError": "durable._errors",
    "RunNotFoundError": "durable._errors",
    "RunTimedOut": "durable._errors",
    "QueueError": "durable._errors",
    "DuplicateRunError": "durable._errors",
    "ScheduleError": "durable._errors",
    "SerializationError": "durable._errors",
    "StepFailed": "durable._errors",
    "StepTimeoutError": "durable._errors",
    "UnknownWorkflowError": "durable._errors",
    "UnrecordedRaceError": "durable._errors",
    "WorkflowDefinitionError": "durable._errors",
    "UpdateFailed": "durable._errors",
    "UpdateRejected": "durable._errors",
    "Update": "durable.interact._updates",
    "UpdateInfo": "durable.interact._updates",
    "AsCompleted": "durable.runtime._select",
    "Selected": "durable.runtime._select",
    "AnyEvent": "durable._events",
    "Event": "durable._events",
    "LoggedEvent": "durable._events",
    "decode_record": "durable._events",
    "Registry": "durable.runtime._registry",
    "RetryPolicy": "durable.runtime._registry",
    "Step": "durable.runtime._registry",
    "StepDef": "durable.runtime._registry",
    "WorkflowDef": "durable.runtime._registry",
    "Divergence": "durable._replay",
    "ReplayReport": "durable._replay",
    "replay": "durable._replay",
    "state_at": "durable._replay",
    "RunState": "durable._state",
    "StepState": "durable._state",
    "apply": "durable._state",
    "fold": "durable._state",
    "RunUsage": "durable._usage",
    "StepUsage": "durable._usage",
    "RunInfo": "durable._views",
    "RunSummary": "durable._views",
    "StepInfo": "durable._views",
    "Worker": "durable._worker",
    "WorkerOptions": "durable._options",
}

__all__ = [
    "URL_ENV",
    "AnyEvent",
    "AppLike",
    "Approval",
    "ApprovalError",
    "AsCompleted",
    "ChildRunFailed",
    "Client",
    "Context",
    "CorruptEventError",
    "DagFailed",
    "DagPartial",
    "Divergence",
    "DuplicateRunError",
    "DurableError",
    "Engine",
    "ErrorInfo",
    "Event",
    "InvalidIdError",
    "InvalidInputError",
    "LoggedEvent",
    "NonDeterminismError",
    "QueueError",
    "Registry",
    "RepairError",
    "ReplayReport",
    "RetryPolicy",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunIdConflictError",
    "RunInfo",
    "RunNotFoundError",
    "RunState",
    "RunSummary",
    "RunTimedOut",
    "RunUsage",
    "ScheduleError",
    "Selected",
    "SerializationError",
    "Step",
    "StepContext",
    "StepDef",
    "StepFailed",
    "StepInfo",
    "StepState",
    "StepTimeoutError",
    "StepUsage",
    "UnknownWorkflowError",
    "UnrecordedRaceError",
    "Update",
    "UpdateFailed",
    "UpdateInfo",
    "UpdateRejected",
    "Worker",
    "WorkerOptions",
    "WorkflowDef",
    "WorkflowDefinitionError",
    "apply",
    "current_step",
    "decode_record",
    "decode_value",
    "encode_value",
    "fold",
    "replay",
    "resolve_url",
    "state_at",
]


__getattr__, __dir__ = lazy_names("durable", _WHERE, globals())
