"""The authoring API: `from sdk import App, Context, RetryPolicy, ...`."""

from typing import TYPE_CHECKING, Any

from durable import (
    Approval,
    ApprovalError,
    ChildRunFailed,
    Context,
    DagFailed,
    DagPartial,
    DuplicateRunError,
    DurableError,
    ErrorInfo,
    EventNotSetError,
    ExternalAlreadySettledError,
    ExternalFailed,
    ExternalWait,
    HistoryInfo,
    InvalidIdError,
    InvalidInputError,
    InvalidTokenError,
    LoggedEvent,
    NonDeterminismError,
    QueryError,
    QueueError,
    RepairError,
    RetryPolicy,
    RunCancelled,
    RunFailed,
    RunHandle,
    RunIdConflictError,
    RunInfo,
    RunNotFoundError,
    RunSummary,
    RunTimedOut,
    RunUsage,
    ScheduleError,
    SerializationError,
    Step,
    StepContext,
    StepFailed,
    StepInfo,
    StepTimeoutError,
    StepUsage,
    StreamClosedError,
    StreamItem,
    UnknownQueryError,
    UnknownWorkflowError,
    UnrecordedRaceError,
    Update,
    UpdateFailed,
    UpdateInfo,
    UpdateRejected,
    WorkflowDefinitionError,
    close_stream,
    current_step,
    write_stream,
)
from sdk._app import App

if TYPE_CHECKING:
    from durable.agents import DurableAgent

__all__ = [
    "App",
    "Approval",
    "ApprovalError",
    "ChildRunFailed",
    "Context",
    "DagFailed",
    "DagPartial",
    "DuplicateRunError",
    "DurableAgent",
    "DurableError",
    "ErrorInfo",
    "EventNotSetError",
    "ExternalAlreadySettledError",
    "ExternalFailed",
    "ExternalWait",
    "HistoryInfo",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidTokenError",
    "LoggedEvent",
    "NonDeterminismError",
    "QueryError",
    "QueueError",
    "RepairError",
    "RetryPolicy",
    "RunCancelled",
    "RunFailed",
    "RunHandle",
    "RunIdConflictError",
    "RunInfo",
    "RunNotFoundError",
    "RunSummary",
    "RunTimedOut",
    "RunUsage",
    "ScheduleError",
    "SerializationError",
    "Step",
    "StepContext",
    "StepFailed",
    "StepInfo",
    "StepTimeoutError",
    "StepUsage",
    "StreamClosedError",
    "StreamItem",
    "UnknownQueryError",
    "UnknownWorkflowError",
    "UnrecordedRaceError",
    "Update",
    "UpdateFailed",
    "UpdateInfo",
    "UpdateRejected",
    "WorkflowDefinitionError",
    "close_stream",
    "current_step",
    "write_stream",
]


def __getattr__(name: str) -> Any:
    # DurableAgent imports Pydantic AI (the `agents` extra): loaded when first asked for, so
    # `import sdk` stays light and works without it.
    if name == "DurableAgent":
        try:
            from durable.agents import DurableAgent
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("pydantic"):
                raise
            raise ModuleNotFoundError(
                "sdk.DurableAgent needs Pydantic AI: pip install 'durable[agents]'", name=exc.name
            ) from exc
        return DurableAgent
    if name == "workflows":  # the agent workflow builder (`from sdk.workflows import ...`)
        import importlib

        return importlib.import_module("sdk.workflows")
    raise AttributeError(f"module 'sdk' has no attribute {name!r}")
