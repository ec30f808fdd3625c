"""What users read about runs: stable shapes (the CLI's --json prints exactly these)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from durable._codec import decode_value
from durable._errors import CorruptEventError, ErrorInfo
from durable._events import LoggedEvent
from durable._state import RunState, StepState
from durable._usage import add_usage, model_usage
from storage import RunRecord


class StepInfo(msgspec.Struct, frozen=True):
    position: int
    name: str
    status: str
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration: float | None
    result: Any = None
    error: ErrorInfo | None = None
    next_attempt_at: dt.datetime | None = None
    # A model request's token counters (durable._usage); None for every other step.
    usage: dict[str, int] | None = None


class RunSummary(msgspec.Struct, frozen=True):
    run_id: str
    workflow: str
    version: str
    status: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    duration: float | None
    # Unfinished and no live worker has its (workflow, version): who it waits for.
    waiting_for: str | None = None


class HistoryInfo(msgspec.Struct, frozen=True):
    """One history of a run (ctx.continue_as_new(): a run's histories form a chain; a run never
    continued has one, generation 0). `retained`: its events are still stored."""

    generation: int
    first_seq: int
    last_seq: int | None  # None: the current history
    started_at: dt.datetime
    ended_at: dt.datetime | None
    retained: bool


class RunInfo(msgspec.Struct, frozen=True):
    run_id: str
    workflow: str
    version: str
    status: str
    input: Any
    result: Any
    error: ErrorInfo | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    duration: float | None
    steps: list[StepInfo]
    parent_run_id: str | None = None
    owner: str | None = None
    events: int = 0
    waiting_for: str | None = None
    # What the run is waiting on now: "ctx.sleep() until ...", "signal 'approve'", ...
    waiting_on: list[str] = []
    # The code fingerprint the run started with, and each change noticed on a resume.
    fingerprint: str = ""
    code_changes: list[str] = []
    # `durable fork`: the run this one was forked from, and where it re-executes from.
    forked_from: str | None = None
    fork_point: str = ""
    # `durable retry`: the seqs of the RunResumed events, one per retry.
    retries: list[int] = []
    # The run's token counters, summed over its model requests (None: it made none).
    usage: dict[str, int] | None = None
    # A queued run (docs/queues.md): its queue, and while it waits there, why and its place
    # ("queued: emails is at its limit 10; 3 runs ahead").
    queue: str | None = None
    # ctx.continue_as_new(): the current history's generation (0: never continued) and seq.
    generation: int = 0
    history_start: int = 1
    queued: str | None = None


def ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 6)


def summary(record: RunRecord, waiting_for: str | None = None) -> RunSummary:
    created = ts(record.created_at)
    assert created is not None
    return RunSummary(
        waiting_for=waiting_for,
        run_id=record.run_id,
        workflow=record.workflow,
        version=record.version,
        status=record.status,
        created_at=created,
        finished_at=ts(record.finished_at),
        duration=_duration(record.created_at, record.finished_at),
    )


def step_info(step: StepState) -> StepInfo:
    result = decode_value(step.result) if step.result is not None else None
    return StepInfo(
        position=step.pos,
        name=step.name,
        status=step.status,
        attempts=step.attempts,
        started_at=ts(step.started_at),
        finished_at=ts(step.finished_at),
        duration=_duration(step.started_at, step.finished_at),
        result=result,
        error=step.error,
        next_attempt_at=ts(step.next_attempt_at),
        usage=model_usage(result),
    )


def waiting_on(state: RunState) -> list[str]:
    out: list[str] = []
    for pos, wait in sorted(state.waits.items()):
        if wait.done:
            continue
        if wait.kind == "timer":
            due = ts(wait.due)
            out.append(f"position {pos}: ctx.sleep() until {due.isoformat() if due else '?'}")
        elif wait.kind == "signal":
            due = ts(wait.due)
            until = f" (until {due.isoformat()})" if due is not None else ""
            out.append(f"position {pos}: signal {wait.signal!r}{until}")
        elif wait.kind == "select":
            due = ts(wait.due)
            until = f" (until {due.isoformat()})" if due is not None else ""
            out.append(f"position {pos}: {wait.describe()}{until}")
        else:
            out.append(f"position {pos}: child run {wait.child_run_id!r}")
    return out


def run_info(record: RunRecord, state: RunState, waiting_for: str | None = None) -> RunInfo:
    created = ts(record.created_at)
    assert created is not None
    error = state.error
    if error is None and record.error is not None:
        error = msgspec.msgpack.decode(record.error, type=ErrorInfo)
    steps = [step_info(s) for _, s in sorted(state.steps.items())]
    usage: dict[str, int] | None = None
    for step in steps:
        usage = add_usage(usage, step.usage)
    return RunInfo(
        run_id=record.run_id,
        workflow=record.workflow,
        version=record.version,
        status=record.status,
        # A continued run (ctx.continue_as_new()): the input of its current history.
        input=decode_value(state.input if state.generation and state.input else record.input),
        result=decode_value(record.result) if record.result is not None else None,
        error=error,
        created_at=created,
        finished_at=ts(record.finished_at),
        duration=_duration(record.created_at, record.finished_at),
        steps=steps,
        parent_run_id=record.parent_run_id,
        owner=record.owner if record.status in ("pending", "running") else None,
        events=state.last_seq,
        waiting_for=waiting_for,
        generation=state.generation,
        history_start=state.history_start,
        waiting_on=[] if state.finished else waiting_on(state),
        fingerprint=state.fingerprint,
        code_changes=[f"{fp[:12]} at event {seq}" for seq, fp in state.fingerprints],
        forked_from=state.forked_from,
        fork_point=state.fork_point,
        retries=list(state.resumed),
        usage=usage,
    )


class EventView(msgspec.Struct, frozen=True):
    """One event as `durable events --json` prints it: nested msgpack values decoded."""

    seq: int
    at: dt.datetime
    type: str
    fields: dict[str, Any]


def plain(value: Any) -> Any:
    """A JSON-able form of a decoded value (bytes as base64, datetimes as ISO strings,
    non-string keys as strings), so no Python repr ever reaches the output."""
    try:
        return msgspec.to_builtins(value, str_keys=True)
    except TypeError:
        # MessagePack allows map keys JSON can't have (bytes, arrays, nil): spell them out.
        return msgspec.to_builtins(_loose(value), str_keys=True)


def _loose(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return {f: _loose(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, dict):
        return {_key(k): _loose(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_loose(v) for v in value]
    return value


def _key(key: Any) -> Any:
    if isinstance(key, str | int | float) and not isinstance(key, bool):
        return key
    return msgspec.json.encode(plain(key)).decode()


def event_view(logged: LoggedEvent) -> EventView:
    fields: dict[str, Any] = {}
    for name in msgspec.structs.fields(logged.event):
        value = getattr(logged.event, name.name)
        if isinstance(value, msgspec.Raw):
            try:
                value = plain(decode_value(value))
            except msgspec.DecodeError as exc:
                raise CorruptEventError(
                    logged.run_id, logged.seq, f"field {name.name!r}: {exc}"
                ) from None
        fields[name.name] = value
    at = dt.datetime.fromtimestamp(logged.at, dt.UTC)
    return EventView(seq=logged.seq, at=at, type=logged.type, fields=fields)
