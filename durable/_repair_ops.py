"""`durable fork` and `durable retry` against a store (planned by durable._repair).

A fork's run row and its copied history are created in one transaction, so no worker can
claim a fork with half a history. A retry appends its RunResumed and reopens the run row in
one transaction, refused if the run is no longer failed or cancelled (two retries at once:
one wins).
"""

from __future__ import annotations

import time
import uuid

import msgspec

from durable._durations import check_duration
from durable._errors import RepairError, RunIdConflictError, RunNotFoundError
from durable._events import (
    AnyEvent,
    InboxDropped,
    LoggedEvent,
    RunStarted,
    decode_record,
    encode_event,
    event_type,
)
from durable._ids import check_id
from durable._repair import fork_position, fork_prefix, retry_plan, retry_summary
from durable._replay import replay
from durable._state import RunState, fold
from durable.dag._loops import loop_owners
from durable.runtime._registry import Registry, WorkflowDef
from storage import (
    FINAL_STATUSES,
    Append,
    DedupeKeyHeldError,
    EventRecord,
    NewRun,
    RunRecord,
    Store,
)


async def _read(store: Store, run_id: str) -> tuple[RunRecord, list[LoggedEvent], RunState]:
    record = await store.get_run(run_id)
    if record is None:
        raise RunNotFoundError(run_id)
    events = [decode_record(r) for r in await store.read_history(run_id)]
    return record, events, fold(run_id, events)


async def fork_run(
    store: Store,
    registry: Registry,
    source_id: str,
    from_step: str,
    *,
    version: str | None = None,
    run_id: str | None = None,
) -> tuple[str, WorkflowDef, int]:
    """Create the fork; (its run id, the workflow it runs, the position it re-executes from).
    The copied history is first replayed against the code the fork will run: a fork that
    would diverge is refused here, not failed later by a worker."""
    if run_id is not None:
        check_id("run id", run_id)  # before anything is read or written
    record, events, state = await _read(store, source_id)
    if record.status not in FINAL_STATUSES:
        raise RepairError(
            f"run {source_id!r} is {record.status}: a fork starts from a finished run; wait "
            f"for it to end or cancel it (`durable cancel {source_id}`) first"
        )
    wf = registry.workflow(state.workflow, version or state.version)
    pos = fork_position(state, from_step)
    members = loop_owners(wf.dag.definition.steps) if wf.dag is not None else {}
    prefix = fork_prefix(state, events, pos, members)
    now = time.time()
    deadline = None
    if state.deadline is not None and state.created_at is not None:
        deadline = now + (state.deadline - state.created_at)  # the same time allowance
    assert state.input is not None
    started = RunStarted(
        workflow=wf.name,
        version=wf.version,
        input=state.input,
        fingerprint=wf.fingerprint,
        parallelism=state.parallelism,
        deadline=deadline,
        forked_from=source_id,
        fork_point=_describe(state, pos),
        kind="dag" if wf.dag is not None else "",
    )
    rid = run_id if run_id is not None else uuid.uuid4().hex
    chain: list[AnyEvent] = [started, *prefix]
    logged = [LoggedEvent(rid, i + 1, now, e) for i, e in enumerate(chain)]
    report = await replay(rid, logged, registry)
    if report.divergence is not None:
        div = report.divergence
        raise RepairError(
            f"the history of run {source_id!r} before position {pos} does not replay on "
            f"{wf.name}@{wf.version}: {div.message} ({div.where}); fork from an earlier "
            "position, or onto a version whose code matches it"
        )
    records = [
        EventRecord(rid, e.seq, event_type(e.event), encode_event(e.event), now) for e in logged
    ]
    new = NewRun(
        run_id=rid, workflow=wf.name, version=wf.version, input=bytes(state.input), created_at=now
    )
    _, created = await store.create_run(new, records[0], history=records[1:])
    if not created:
        raise RunIdConflictError(f"run id {rid!r} is taken; choose another --run-id")
    return rid, wf, pos


def _describe(state: RunState, pos: int) -> str:
    step = state.steps.get(pos)
    return f"position {pos} ({step.name})" if step is not None else f"position {pos}"


async def retry_run(
    store: Store, run_id: str, *, timeout: float | None = None, via_parent: bool = False
) -> list[tuple[str, str]]:
    """Resume a failed or cancelled run in place (and the failed or cancelled child runs it
    ended on, first). Returns (run id, what its retry does, in words) for each run reopened,
    the children first."""
    record, events, state = await _read(store, run_id)
    allowed = ("failed", "partial", "cancelled") if state.kind == "dag" else ("failed", "cancelled")
    if record.status not in allowed:
        what = (
            "a failed or cancelled run (or a partial DAG run)"
            if state.kind == "dag"
            else "a failed or cancelled run"
        )
        raise RepairError(f"run {run_id!r} is {record.status}: only {what} can be retried")
    if record.parent_run_id is not None and not via_parent:
        await _check_parent(store, run_id, record.parent_run_id)
    if timeout is not None:
        timeout = check_duration("retry timeout", timeout, positive=True)
    now = time.time()
    plan = msgspec.structs.replace(
        retry_plan(state, events), deadline=None if timeout is None else now + timeout
    )
    retried: list[str] = []
    for child in plan.children:
        found = await store.get_run(child)
        if found is None:
            raise RepairError(
                f"run {run_id!r} failed on its child run {child!r}, which no longer exists "
                "(pruned?): it cannot be retried; fork it from before the child instead"
            )
        if found.status in ("failed", "cancelled"):
            retried.append(child)
    last_seq = await _drop_stale_inbox(store, run_id, state.last_seq, set(retried), now)
    reopened: list[tuple[str, str]] = []
    for child in retried:
        reopened += await retry_run(store, child, via_parent=True)
    event = EventRecord(run_id, last_seq + 1, "RunResumed", encode_event(plan), now)
    try:
        await store.reopen_run(run_id, event, statuses=allowed, now=now)
    except DedupeKeyHeldError as exc:
        raise RepairError(
            f"run {run_id!r} cannot be retried: run {exc.holder!r}, started in queue "
            f"{exc.queue!r} after it ended, holds its dedupe_key {exc.dedupe_key!r} and is "
            f"queued or running; wait for {exc.holder!r} to end (or cancel it), then retry"
        ) from None
    return [*reopened, (run_id, retry_summary(plan, state))]


async def _drop_stale_inbox(
    store: Store, run_id: str, last_seq: int, retried: set[str], now: float
) -> int:
    """Take out of the ended run's inbox, unread, what arrived for it and must not reach the
    resumed run: a cancel request (its cancellation is over) and the end of a child that is
    retried too. Done before anything is reopened, so that no new request or end is ever
    mistaken for (deduplicated into) a stale one. Nobody else writes to an ended run's log.
    Returns the log's last seq."""
    stale = [
        item.id
        for item in await store.read_inbox([run_id])
        if item.kind == "cancel" or (item.kind == "child" and item.name in retried)
    ]
    if not stale:
        return last_seq
    dropped = InboxDropped(inbox_ids=stale)
    record = EventRecord(run_id, last_seq + 1, event_type(dropped), encode_event(dropped), now)
    await store.append(Append(run_id, (record,), last_seq, consume=tuple(stale)))
    return last_seq + 1


async def _check_parent(store: Store, run_id: str, parent_id: str) -> None:
    parent = await store.get_run(parent_id)
    if parent is None:
        return  # pruned: nobody awaits this run's end any more
    if parent.status == "failed":
        raise RepairError(
            f"run {run_id!r} is a child of run {parent_id!r}, which failed: retry the parent "
            f"(`durable retry {parent_id}` retries the failed children it ended on)"
        )
    if parent.status not in FINAL_STATUSES:
        raise RepairError(
            f"run {run_id!r} is a child of run {parent_id!r}, which is still {parent.status} "
            "and has already been told this child failed: retrying the child alone would "
            "change what the parent saw"
        )
