"""The engine: events, the replayer (a pure fold), the executor, the worker, the client."""

from durable._client import Client, RunHandle
from durable._codec import decode_value, encode_value
from durable._context import Context, StepContext, current_step
from durable._engine import URL_ENV, AppLike, Engine, resolve_url
from durable._errors import (
    ChildRunFailed,
    CorruptEventError,
    DagFailed,
    DagPartial,
    DurableError,
    ErrorInfo,
    InvalidIdError,
    NonDeterminismError,
    RepairError,
    RunCancelled,
    RunFailed,
    RunIdConflictError,
    RunNotFoundError,
    RunTimedOut,
    SerializationError,
    StepFailed,
    StepTimeoutError,
    UnknownWorkflowError,
    WorkflowDefinitionError,
)
from durable._events import AnyEvent, Event, LoggedEvent, decode_record
from durable._registry import Registry, RetryPolicy, Step, StepDef, WorkflowDef
from durable._replay import Divergence, ReplayReport, replay, state_at
from durable._state import RunState, StepState, apply, fold
from durable._views import RunInfo, RunSummary, StepInfo
from durable._worker import Worker, WorkerOptions

__all__ = [
    "URL_ENV",
    "AnyEvent",
    "AppLike",
    "ChildRunFailed",
    "Client",
    "Context",
    "CorruptEventError",
    "DagFailed",
    "DagPartial",
    "Divergence",
    "DurableError",
    "Engine",
    "ErrorInfo",
    "Event",
    "InvalidIdError",
    "LoggedEvent",
    "NonDeterminismError",
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
    "SerializationError",
    "Step",
    "StepContext",
    "StepDef",
    "StepFailed",
    "StepInfo",
    "StepState",
    "StepTimeoutError",
    "UnknownWorkflowError",
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
