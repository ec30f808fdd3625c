"""Starting runs and reading them back: the operations behind App.start/run/get_run/watch."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from durable._approvals import Approval, read_approvals, send_decision
from durable._codec import checked, decode_value, encode_value
from durable._durations import check_duration
from durable._errors import (
    RUN_FAILURES,
    DuplicateRunError,
    ErrorInfo,
    InvalidInputError,
    RunCancelled,
    RunFailed,
    RunIdConflictError,
    RunNotFoundError,
    UnknownWorkflowError,
)
from durable._events import (
    TERMINAL_EVENTS,
    LoggedEvent,
    RunStarted,
    decode_record,
    encode_event,
)
from durable._ids import check_id, check_lookup
from durable._notify import Notifier
from durable._recovery import load_state
from durable._state import RunState, apply, fold
from durable._usage import RunUsage, run_usage
from durable._views import HistoryInfo, RunInfo, RunSummary, run_info, summary, ts
from durable.interact import _external as external
from durable.interact import _streams as streams
from durable.interact import _values as interact_values
from durable.interact._streams import StreamItem
from durable.interact._updates import ClientUpdates
from durable.queues._cancel import cancel_if_waiting
from durable.queues._control import waiting_reason
from durable.queues._options import QueueStart
from durable.runtime._registry import Registry, WorkflowDef
from storage import (
    FINAL_STATUSES,
    EventRecord,
    Fence,
    NewInboxItem,
    NewRun,
    RunQuery,
    RunRecord,
    Store,
    StreamKey,
)

if TYPE_CHECKING:
    # Loaded only where used: reading runs (the CLI's `runs list`) needs neither the worker
    # (the DAG interpreter) nor the repair machinery.
    from durable._worker import Worker
    from durable.dag._result import DagResult

RUN_STATUSES = ("pending", "running", "succeeded", "partial", "failed", "cancelled")


class Outcome(msgspec.Struct, frozen=True):
    """How a run ended."""

    status: str
    result: bytes | None
    error: ErrorInfo | None


class RunHandle:
    """A reference to a run; result() waits for it to end."""

    def __init__(self, client: Client, run_id: str, workflow: WorkflowDef | None) -> None:
        self._client = client
        self.run_id = run_id
        self._workflow = workflow

    async def result(self, timeout: float | None = None) -> Any:
        """The run's result. Raises RunFailed (with the recorded error) if it failed,
        RunCancelled if it was cancelled, TimeoutError after `timeout` seconds."""
        if timeout is not None:
            timeout = check_duration("result() timeout", timeout)
        async with asyncio.timeout(timeout):
            outcome = await self._client.wait(self.run_id)
        if outcome.status == "succeeded":
            assert outcome.result is not None
            tp = self._workflow.return_type if self._workflow is not None else Any
            return decode_value(outcome.result, tp)
        if outcome.status == "cancelled":
            raise RunCancelled(self.run_id)
        assert outcome.error is not None
        raise RUN_FAILURES.get(outcome.error.type, RunFailed)(self.run_id, outcome.error)

    async def info(self) -> RunInfo:
        return await self._client.get_run(self.run_id)

    async def status(self) -> str:
        record = await self._client.store.get_run(self.run_id)
        if record is None:
            raise RunNotFoundError(self.run_id)
        return record.status

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r}>"


class Client(ClientUpdates):  # update, update_with_start: durable.interact._updates
    def __init__(
        self,
        store: Store,
        registry: Registry,
        notifier: Notifier,
        worker: Worker | None,
        *,
        poll_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.registry = registry
        self.notifier = notifier
        self.worker = worker
        self.poll_interval = poll_interval

    async def start(
        self,
        workflow: str | Callable[..., Any],
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        parallelism: int | None = None,
        timeout: float | None = None,
        parent_run_id: str | None = None,
        record_definition: bool = False,
        queued: QueueStart | None = None,
    ) -> RunHandle:
        """Start a run (see App.start). `timeout`: seconds the whole run may take; past
        them it fails, timed out, whatever it is doing. `record_definition`: a DAG run keeps
        its definition in its log (`durable run FILE`: stored nowhere else), so tools read
        it without the application. `queued`: the run waits in that queue until it admits
        it (durable.queues), never executed here at once."""
        wf = self.registry.workflow(workflow, version)
        if queued is None and wf.dag is not None and wf.dag.definition.queue is not None:
            queued = QueueStart(wf.dag.definition.queue)  # the definition's `queue:`
        if timeout is not None:
            timeout = check_duration("start() timeout", timeout, positive=True)
        if parallelism is not None and (wf.dag is None or parallelism < 1):
            raise ValueError("parallelism must be >= 1 and applies to DAG workflows only")
        if not wf.takes_input and input is not None:
            raise TypeError(f"workflow {wf.name!r} takes no input, but input was given")
        rid = check_id("run id", run_id) if run_id is not None else uuid.uuid4().hex
        data = encode_value(input, f"the input of workflow {wf.name!r}")
        if wf.takes_input and wf.dag is None:
            # As the workflow will decode it: refused now, before anything is written.
            checked(data, wf.input_type, f"the input of workflow {wf.name!r}", InvalidInputError)
        now = time.time()
        worker = self.worker
        local = worker is not None and worker.has_capacity and queued is None
        started = RunStarted(
            workflow=wf.name,
            version=wf.version,
            input=msgspec.Raw(data),
            fingerprint=wf.fingerprint,
            parallelism=parallelism,
            parent_run_id=parent_run_id,
            deadline=None if timeout is None else now + timeout,
            kind="dag" if wf.dag is not None else "",
            definition=wf.dag.definition.canonical_json().decode()
            if record_definition and wf.dag is not None
            else "",
        )
        first = EventRecord(rid, 1, "RunStarted", encode_event(started), now)
        new = NewRun(
            run_id=rid,
            workflow=wf.name,
            version=wf.version,
            input=data,
            created_at=now,
            parent_run_id=parent_run_id,
            owner=worker.owner if local and worker else None,
            lease_expires_at=now + worker.options.lease_ttl if local and worker else None,
        )
        if queued is not None:
            new = msgspec.structs.replace(
                new,
                queue=queued.queue,
                priority=queued.priority,
                partition_key=queued.partition_key,
                dedupe_key=queued.dedupe_key,
                ready_at=now + queued.delay,
            )
        record, created = await self.store.create_run(new, first)
        if not created and record.run_id != rid and queued is not None:
            # Another unfinished run of the queue holds the dedupe key.
            assert queued.dedupe_key is not None
            if queued.if_duplicate == "return":
                return RunHandle(
                    self, record.run_id, self.registry.get(record.workflow, record.version)
                )
            raise DuplicateRunError(queued.queue, queued.dedupe_key, record.run_id)
        if not created:
            if record.workflow != wf.name:
                raise RunIdConflictError(
                    f"run id {rid!r} already names a run of workflow {record.workflow!r}, "
                    f"not {wf.name!r}; choose another run_id"
                )
            return RunHandle(self, rid, self.registry.get(record.workflow, record.version))
        if worker is not None:
            if local:
                state = RunState(run_id=rid)
                apply(state, 1, now, started)
                worker.execute(state, Fence(worker.owner, record.epoch))
            else:
                worker.wake()
        return RunHandle(self, rid, wf)

    async def start_child(
        self,
        workflow: Any,
        input: Any,
        run_id: str,
        version: str | None,
        parent_run_id: str,
        timeout: float | None = None,
        queued: QueueStart | None = None,
    ) -> tuple[str, str, str]:
        """A parent run's ctx.start_child(): (run id, workflow, version) of the child.
        `queued`: the child waits in that queue (a DAG's queued step: see dag/_queued)."""
        handle = await self.start(
            workflow,
            input,
            run_id=run_id,
            version=version,
            parent_run_id=parent_run_id,
            timeout=timeout,
            queued=queued,
        )
        record = await self.store.get_run(handle.run_id)
        assert record is not None
        if record.parent_run_id != parent_run_id:
            raise RunIdConflictError(
                f"run id {run_id!r} already names a run that is not a child of "
                f"{parent_run_id!r}; choose another run_id"
            )
        return record.run_id, record.workflow, record.version

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send signal `name` to a run. Durable once this returns: a run that is not being
        executed right now (no worker runs, it sleeps, a worker crashed) gets it when it
        continues; signals of one name reach the run's waits once each, in order."""
        check_lookup("run id", run_id)
        check_id("signal name", name)
        data = encode_value(payload, f"the payload of signal {name!r}")
        await self._send(run_id, NewInboxItem(run_id, "signal", name, data, time.time()))

    async def cancel(self, run_id: str, reason: str = "") -> bool:
        """Ask a run to stop: the steps and waits it is in are cancelled (the workflow sees
        asyncio.CancelledError there, and may run compensation steps before re-raising),
        its children are cancelled too (not those started with parent_close="abandon"), and
        it ends `cancelled`. Cancelling twice is one request; cancelling a finished run
        raises ValueError. A cancelled run can be resumed with retry(). A queued run still
        waiting for its queue (never started) is ended at once, without running: True (False:
        the request is sent, and the run ends when a worker has delivered it)."""
        check_lookup("run id", run_id)
        record = await self.store.get_run(run_id)
        if record is not None and await cancel_if_waiting(self.store, record, reason):
            self.notifier.notify(run_id)  # its waiters here
            if self.worker is not None and record.parent_run_id is not None:
                self.worker.wake_inbox()  # its parent may be executing here
            return True
        item = NewInboxItem(
            run_id, "cancel", "cancel", reason.encode(), time.time(), dedupe_key="cancel"
        )
        await self._send(run_id, item)
        return False

    async def fork(
        self,
        run_id: str,
        from_step: str | int,
        *,
        version: str | None = None,
        new_run_id: str | None = None,
    ) -> RunHandle:
        """A new run of the finished run `run_id`'s workflow, on the same input, that reuses
        the recorded outcomes before `from_step` (a position, or a step's name) and executes
        from there: after fixing a bug, re-run only what it touched. `version`: run the fork
        on another version of the workflow (its code must replay the reused part). Raises
        RepairError (a ValueError) if the fork cannot be made, saying why."""
        check_lookup("run id", run_id)
        if new_run_id is not None:
            check_id("run id", new_run_id)
        from durable._repair_ops import fork_run

        rid, wf, _ = await fork_run(
            self.store,
            self.registry,
            run_id,
            str(from_step),
            version=version,
            run_id=new_run_id,
        )
        if self.worker is not None:
            self.worker.wake()
        return RunHandle(self, rid, wf)

    async def retry(self, run_id: str, *, timeout: float | None = None) -> RunHandle:
        """Resume a failed or cancelled run in place from where it ended: its failed steps
        get new attempts (with a fresh retry budget), its failed child runs are retried too,
        and everything it completed stays done. A run whose workflow code raised runs on from
        its log (deploy the fix first). A cancelled run (or one whose deadline passed) runs
        again the steps and waits its cancellation ended, with the children cancelled with
        it, and the cancellation is not delivered again; one whose code went on after its
        cancellation (compensation) is refused: fork it. `timeout`: a new deadline for the
        run (a retry drops the old one). Raises RepairError (a ValueError) if the run cannot
        be retried."""
        check_lookup("run id", run_id)
        if timeout is not None:
            timeout = check_duration("retry() timeout", timeout, positive=True)
        from durable._repair_ops import retry_run

        await retry_run(self.store, run_id, timeout=timeout)
        if self.worker is not None:
            self.worker.wake()
        record = await self.store.get_run(run_id)
        assert record is not None
        return RunHandle(self, run_id, self.registry.get(record.workflow, record.version))

    async def approvals(self, run_id: str) -> list[Approval]:
        """The tool calls of the run's durable agents that needed approval, in the order
        requested, each pending, approved or denied (see durable._approvals)."""
        check_lookup("run id", run_id)
        return await read_approvals(self.store, run_id)

    async def decide(
        self, run_id: str, tool_call_id: str, *, approved: bool, reason: str | None = None
    ) -> Approval:
        """Approve or deny the pending tool call `tool_call_id` of the run: durable once this
        returns; the run resumes its agent with it. Exactly once: a call that is unknown or
        already decided (also by a decision sent at the same moment), or a run that has ended,
        raises ApprovalError, and only the decision returned here ever reaches the agent."""
        check_lookup("run id", run_id)
        check_lookup("tool call id", tool_call_id)
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"reason must be a string or None, not {type(reason).__name__}")
        return await send_decision(self.store, run_id, tool_call_id, approved, reason, self._woken)

    def _woken(self) -> None:
        """Something arrived in a run's inbox: an in-process worker may be executing the run,
        or may claim it now that it is ready."""
        if self.worker is not None:
            self.worker.wake_inbox()
            self.worker.wake()

    async def _send(self, run_id: str, item: NewInboxItem) -> None:
        record = await self.store.get_run(run_id)
        if record is None:
            raise RunNotFoundError(run_id)
        if record.status in FINAL_STATUSES:
            raise ValueError(
                f"run {run_id!r} already ended {record.status}: it takes no {item.kind} any more"
            )
        await self.store.send(item)
        if self.worker is not None:
            self.worker.wake_inbox()  # it may be executing the run right here
            self.worker.wake()  # or may claim it now that it is ready

    async def complete(self, token: str, result: Any = None) -> None:
        """Complete an external wait (ctx.wait_external) by its token: durable.interact."""
        await external.complete(self, token, result)

    async def fail(
        self, token: str, error: str | BaseException, *, type: str | None = None
    ) -> None:
        """Fail an external wait by its token (its await raises ExternalFailed)."""
        await external.fail(self, token, error, type=type)

    # -- talking to runs (durable.interact) ---------------------------------------------

    async def get_event(self, run_id: str, key: str, *, timeout: float | None = None) -> Any:
        return await interact_values.get_event(self, run_id, key, timeout=timeout)

    async def list_events(self, run_id: str) -> dict[str, Any]:
        return await interact_values.list_events(self, run_id)

    async def query(self, run_id: str, name: str, *args: Any, timeout: float = 10.0) -> Any:
        from durable.interact._query import answer_query  # the executor: loaded when asked

        return await answer_query(self, run_id, name, args, timeout=timeout)

    async def wait(self, run_id: str) -> Outcome:
        """Wait until the run is finished; returns how it ended."""
        check_lookup("run id", run_id)
        delay = 0.02
        with self.notifier.subscribe(run_id) as changed:
            await self.notifier.ready()  # PostgreSQL: another process's commit wakes us
            while True:
                local = self._local_outcome(run_id)
                if local is not None:
                    found = await local
                    if found is not None:
                        return found
                changed.clear()  # before reading: a change after the read still wakes us
                record = await self.store.get_run(run_id)
                if record is None:
                    raise RunNotFoundError(run_id)
                if record.status in FINAL_STATUSES:
                    error = None
                    if record.error is not None:
                        error = msgspec.msgpack.decode(record.error, type=ErrorInfo)
                    return Outcome(record.status, record.result, error)
                try:
                    await asyncio.wait_for(changed.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, self.poll_interval)

    def _local_outcome(self, run_id: str) -> Awaitable[Outcome | None] | None:
        """If the run is executing in this process, an awaitable of its outcome: the executor's
        final state, which it reaches only once the final event is durable. No read needed."""
        worker = self.worker
        task = worker.tasks.get(run_id) if worker is not None else None
        if worker is None or task is None:
            return None
        executor = worker.executors[run_id]

        async def outcome() -> Outcome | None:
            await asyncio.wait([task])
            state = executor.state
            log = executor.log
            if not state.finished or log is None or log.failed is not None:
                return None  # stopped without finishing: ask the database
            result = bytes(state.result) if state.result is not None else None
            return Outcome(state.status, result, state.error)

        return outcome()

    async def get_run(self, run_id: str) -> RunInfo:
        check_lookup("run id", run_id)
        record = await self.store.get_run(run_id)
        if record is None:
            raise RunNotFoundError(run_id)
        # A DAG run's snapshot and the events after it, if it has one (durable._snapshot).
        state = await load_state(self.store, run_id, snapshot=True, last_seq=record.last_seq)
        info = run_info(record, state, (await self._waiting_for([record])).get(run_id))
        if record.queue is None:  # a plain run: no place in a queue to look up
            return info
        place = await self.store.run_queue(run_id)
        if place is None:
            return info
        queued = None
        if place.admitted_at is None and record.status in ("pending", "running"):
            queued = await waiting_reason(self.store, place)
        return msgspec.structs.replace(info, queue=place.queue, queued=queued)

    async def histories(self, run_id: str) -> list[HistoryInfo]:
        """The chain of the run's histories, oldest first (ctx.continue_as_new())."""
        check_lookup("run id", run_id)
        record = await self.store.get_run(run_id)
        if record is None:
            raise RunNotFoundError(run_id)
        chain = await self.store.list_histories(run_id)
        if not chain:  # never continued: one history, from the run's first event
            return [HistoryInfo(0, 1, None, _at(record.created_at), None, True)]
        return [
            HistoryInfo(
                h.generation,
                h.first_seq,
                h.last_seq,
                _at(h.started_at),
                ts(h.ended_at),
                h.retained,
            )
            for h in chain
        ]

    async def usage(self, run_id: str) -> RunUsage:
        """The run's token usage and script resources, in total and per step (durable._usage)."""
        check_lookup("run id", run_id)
        if await self.store.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        events = await self.store.read_history(run_id)
        return run_usage(fold(run_id, [decode_record(r) for r in events]))

    async def _waiting_for(self, records: list[RunRecord]) -> dict[str, str]:
        """Unfinished runs nobody executes whose (workflow, version) no live worker has:
        they wait for a worker that has it (never failed, never silently stuck)."""
        idle = [r for r in records if r.status in ("pending", "running") and r.owner is None]
        if not idle:
            return {}
        workers = await self.store.list_workers(now=time.time())
        able = {tuple(c) for w in workers for c in w.capabilities}
        return {
            r.run_id: f"a worker with {r.workflow}@{r.version}"
            for r in idle
            if (r.workflow, r.version) not in able
        }

    async def dag_result(self, run_id: str) -> DagResult:
        """A DAG run's statuses, step results, counts and duration, from its log."""
        check_lookup("run id", run_id)
        events = await self.store.read_events(run_id)
        if not events:
            raise RunNotFoundError(run_id)
        state = fold(run_id, [decode_record(r) for r in events])
        wf = self.registry.get(state.workflow, state.version)
        if wf is None or wf.dag is None:
            raise UnknownWorkflowError(state.workflow, state.version, self.registry.names())
        from durable.dag._result import dag_result

        return dag_result(wf.dag.definition, state)

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[RunSummary]:
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {', '.join(RUN_STATUSES)}")
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if workflow is not None:
            check_lookup("workflow name", workflow)
        records = await self.store.list_runs(
            RunQuery(status=status, workflow=workflow, limit=limit)
        )
        waiting = await self._waiting_for(records)
        return [summary(r, waiting.get(r.run_id)) for r in records]

    async def events(self, run_id: str, after_seq: int = 0) -> list[LoggedEvent]:
        check_lookup("run id", run_id)
        records = await self.store.read_events(run_id, after_seq)
        if not records and after_seq == 0 and await self.store.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        return [decode_record(r) for r in records]

    async def watch(self, run_id: str) -> AsyncIterator[LoggedEvent]:
        """Every event of the run, from the first, live, until the run ends."""
        last = 0
        delay = 0.02
        with self.notifier.subscribe(run_id) as changed:
            await self.notifier.ready()
            while True:
                changed.clear()
                batch = await self.events(run_id, last)
                for i, logged in enumerate(batch):
                    last = logged.seq
                    yield logged
                    # An end followed by more events is one a `durable retry` resumed from.
                    if isinstance(logged.event, TERMINAL_EVENTS) and i == len(batch) - 1:
                        return
                if batch:
                    delay = 0.02
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, self.poll_interval)

    # -- streams (durable.interact._streams) ------------------------------------------------

    def read_stream(
        self, run_id: str, key: str, *, after: int = 0, type: Any = Any
    ) -> AsyncIterator[Any]:
        return streams.read_stream(self, run_id, key, after=after, type=type)

    def stream_items(
        self, run_id: str, key: str, *, after: int = 0, type: Any = Any
    ) -> AsyncIterator[StreamItem]:
        return streams.stream_items(self, run_id, key, after=after, type=type)

    async def stream_keys(self, run_id: str) -> list[StreamKey]:
        check_lookup("run id", run_id)
        return await self.store.stream_keys(run_id)


def _at(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)
