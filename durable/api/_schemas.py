"""The HTTP API's request and response bodies (camelCase JSON, as 003 writes them).

Times are epoch milliseconds and durations milliseconds, as in 003's examples.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f/]+$")]


class Api(msgspec.Struct, rename="camel", kw_only=True):
    """Base of every body: camelCase names."""


class StartRequest(Api, forbid_unknown_fields=True):
    workflow_id: Id
    context: Any = None
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    execution_id: Id | None = None
    # Queued start (docs/queues.md): the queue must be declared by the serving application.
    queue: Id | None = None
    priority: int | None = None
    partition_key: Id | None = None
    dedupe_key: Id | None = None
    delay: Annotated[float, msgspec.Meta(ge=0)] | None = None  # seconds


class StartResponse(Api):
    execution_id: str


class CancelRequest(Api, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=10_000)] = ""


class Accepted(Api):
    execution_id: str
    status: str  # "cancelling", "cancelled" (a queued run that waited), "signalled"


class WorkflowSummary(Api):
    id: str
    name: str
    description: str | None
    version: str  # the newest
    versions: list[str]
    kind: str  # "dag" or "python"


class WorkflowList(Api):
    workflows: list[WorkflowSummary]


class WorkflowVersion(Api):
    version: str
    fingerprint: str
    registered: str  # "api" (stored in the database) or "code" (an application's)
    created_at: int | None = None


class WorkflowDetail(Api):
    id: str
    name: str
    description: str | None
    version: str
    kind: str
    versions: list[WorkflowVersion]
    # The version's definition: the JSON as registered, or the DAG's steps, or None (Python).
    definition: Any = None


class Registered(Api):
    id: str
    version: str
    created: bool
    fingerprint: str


class ErrorBody(Api):
    type: str
    message: str


class ExecutionSummary(Api):
    execution_id: str
    workflow_id: str
    version: str
    status: str
    start_time: int
    end_time: int | None
    duration: int | None


class ExecutionList(Api):
    executions: list[ExecutionSummary]
    next_cursor: str | None


Counters = Annotated[
    dict[str, int],
    msgspec.Meta(
        description="Token counters of model requests (durable agents), summed: `requests`, "
        "`input_tokens`, `output_tokens` and any other integer counter the model reported."
    ),
]


class Resources(Api):
    """A script's own process tree's CPU time and peak memory (of several: CPU summed, the
    largest peak)."""

    cpu_seconds: float  # user + system
    max_rss_kb: int  # peak resident set size, KiB


class StepResult(Api):
    step_id: str
    status: str  # success, failed, running, retrying, skipped, pending, cancelled
    attempts: int
    duration: int | None = None
    result: Any = None
    error: ErrorBody | None = None
    # A model request's tokens / a script's resources (a DAG step's: over its instances);
    # null for every other step.
    usage: Counters | None = None
    resources: Resources | None = None


class QueuePlace(Api):
    """A queued run's place in its queue (docs/queues.md). admittedAt: epoch ms of its
    admission, null while it waits; ahead: the waiting runs before it by priority and age, null
    once admitted; whyWaiting: why it waits and its place, as `durable runs show` says it
    ("queued: emails is at its limit 10; 3 runs ahead"), null unless it is waiting."""

    name: str
    priority: int
    partition_key: str | None
    dedupe_key: str | None
    admitted_at: int | None
    ahead: int | None
    why_waiting: str | None


class ExecutionDetail(Api):
    execution_id: str
    workflow_id: str
    version: str
    status: str
    start_time: int
    end_time: int | None
    duration: int | None
    current_steps: list[str]
    completed_steps: list[str]
    failed_steps: list[str]
    step_results: dict[str, StepResult]
    context: Any
    error: ErrorBody | None = None
    parent_execution_id: str | None = None
    forked_from: str | None = None
    retries: int = 0
    # The run's totals over its steps; null when it made no model request / ran no script.
    usage: Counters | None = None
    resources: Resources | None = None
    # Started in a queue (app.start(..., queue=...)): where it stands there; null otherwise.
    queue: QueuePlace | None = None
    # ctx.continue_as_new(): the current history's generation (0: never continued) and its
    # first event; /executions/{id}/histories lists the chain.
    generation: int = 0
    history_start: int = 1


class HistoryBody(Api):
    generation: int
    first_event: int
    last_event: int | None  # null: the current history
    start_time: int
    end_time: int | None
    retained: bool  # its events are still stored


class HistoryList(Api):
    execution_id: str
    histories: list[HistoryBody]


class VisualStep(Api):
    id: str
    name: str
    status: str
    attempts: int
    duration: int | None
    dependencies: list[str]


class Visualization(Api):
    execution_id: str
    workflow_name: str
    status: str
    duration: int | None
    steps: list[VisualStep]


class EventBody(Api):
    seq: int
    at: int
    type: str
    fields: dict[str, Any]


class EventList(Api):
    events: list[EventBody]


class Health(Api):
    status: str
    database: str


class ProblemBody(Api):
    path: str
    message: str
    line: int | None = None


class ErrorResponse(Api):
    error: str
    problems: list[ProblemBody] = []


class ApprovalBody(Api):
    """A tool call of a durable agent that needed a human's approval (docs/agents.md)."""

    tool_call_id: str
    tool_name: str
    args: Any
    agent: str
    requested_at: int
    status: str  # "pending", "approved", "denied"
    decided: bool
    reason: str | None = None
    decided_at: int | None = None
    position: int = 0  # of the `<agent>.approval_request` step that recorded it
    signal: str = ""  # the signal that decides it


class ApprovalList(Api):
    approvals: list[ApprovalBody]


class DecisionRequest(Api, forbid_unknown_fields=True):
    approved: bool
    reason: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None


class ScheduleBody(Api):
    """A cron schedule (docs/schedules.md): times are epoch ms, nextRunAt null while paused."""

    name: str
    workflow: str
    cron: str
    timezone: str
    catchup: str  # "skip", "one", "all"
    catchup_limit: int
    grace_ms: int
    overlap: str  # "skip", "queue", "cancel_previous", "allow"
    paused: bool
    next_run_at: int | None
    waiting_for_previous: bool
    last_tick_at: int | None
    last_run_id: str | None


class ScheduleList(Api):
    schedules: list[ScheduleBody]


class TriggerResponse(Api):
    execution_id: str


Instant = Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | float


class BackfillRequest(Api, forbid_unknown_fields=True):
    """A time range, both ends included: ISO 8601 text (e.g. "2026-12-01T00:00:00Z") or epoch
    seconds."""

    start: Instant
    end: Instant


class BackfillResponse(Api):
    execution_ids: list[str]


class QueueBody(Api):
    """A queue (docs/queues.md): its limits (null: none) and where it stands. oldestWaitingAt:
    epoch ms of the oldest waiting run's creation; whyWaiting: why its runs wait (null when
    none does)."""

    name: str
    concurrency: int | None
    worker_concurrency: int | None
    rate_limit: int | None
    rate_period_ms: int | None
    partition_concurrency: int | None
    waiting: int
    running: int
    admitted_recently: int
    oldest_waiting_at: int | None
    why_waiting: str | None


class QueueList(Api):
    queues: list[QueueBody]


class QueuedRunBody(Api):
    """An unfinished run of a queue. admittedAt: epoch ms, null while it waits; readyAt: not
    admitted before this (a delayed start)."""

    execution_id: str
    workflow_id: str
    status: str
    priority: int
    partition_key: str | None
    admitted_at: int | None
    ready_at: int | None
    start_time: int


class QueueDetail(QueueBody):
    """One queue with its runs, at most `limit` of each kind (`waiting` and `running` count
    them all): admittedRuns hold its slots (by admission); waitingRuns in the order of priority,
    then age, as a run's `ahead` counts them (within a priority, partitions take turns at
    admission, which this order leaves aside)."""

    admitted_runs: list[QueuedRunBody]
    waiting_runs: list[QueuedRunBody]
