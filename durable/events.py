"""The event types of the log, as a namespace: `from durable import events` then
`isinstance(logged.event, events.StepCompleted)`. (The event StepFailed and the exception
sdk.StepFailed share a name, so the events are not re-exported at the package top level.)"""

from durable._events import (
    TERMINAL_EVENTS,
    AnyEvent,
    CancelRequested,
    Event,
    LoggedEvent,
    MarkerRecorded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
)

__all__ = [
    "TERMINAL_EVENTS",
    "AnyEvent",
    "CancelRequested",
    "Event",
    "LoggedEvent",
    "MarkerRecorded",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
    "StepCompleted",
    "StepFailed",
    "StepSkipped",
    "StepStarted",
]
