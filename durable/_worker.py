"""The worker: leases runs, executes them, keeps the leases alive, gives them back.

A run is executed by at most one worker at a time: the one holding its lease (owner, epoch,
expiry). A worker claims runs nobody holds or whose lease expired; each claim bumps the epoch, so
a paused worker that wakes up after losing its lease is fenced off by the store on its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from durable._errors import CorruptEventError
from durable._notify import Notifier
from durable._options import WorkerOptions as WorkerOptions  # re-exported
from durable._recovery import load_state
from durable._runlog import RunLog
from durable._snapshot import Snapshots
from durable._state import RunState
from durable.dag._run import DagExecutor
from durable.dag._services import DagServices
from durable.queues._cancel import cancel_if_waiting
from durable.runtime._child_starts import ChildStarter
from durable.runtime._executor import RunExecutor
from durable.runtime._registry import Registry
from storage import (
    UPDATE_ITEM_KIND,
    Claim,
    EventChecksumError,
    Fence,
    HistoryMark,
    InboxItem,
    LeaseLostError,
    Release,
    StorageError,
    Store,
    WorkSignal,
)

log = logging.getLogger("durable.worker")

# A run whose history can't be read is put aside for this long before another try, so a
# corrupted row neither crash-loops a worker nor hides: it stays visible to the CLI.
QUARANTINE_SECONDS = 60.0
RETRY_FAILED_WRITES_MAX = 60.0
REPAIR_LOOK_DELAY = 0.05  # a run found not parkable is looked at again after this
POLL_INTERVAL = 1.0
NOTIFIED_POLL_INTERVAL = 5.0


class Worker:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        notifier: Notifier,
        options: WorkerOptions,
        *,
        database_url: str | None = None,  # unmasked: its password is kept from scripts
    ) -> None:
        self.store = store
        self.registry = registry
        self.notifier = notifier
        self.options = options
        self.owner = options.owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.executors: dict[str, RunExecutor | DagExecutor] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.step_pool = ThreadPoolExecutor(options.step_threads, thread_name_prefix="durable-step")
        self.dag_services = DagServices(
            registry.actions,
            self.step_pool,
            database_url=database_url,
            max_step_crashes=registry.max_step_crashes,
        )
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._running = False
        self._starved = False  # the claim loop found no free slot: wake it when one frees up
        self.stale_writes = 0  # appends rejected because another worker took the lease
        # run id -> consecutive executions here that stopped on a failed write
        self._write_failures: dict[str, int] = {}
        # Runs put aside while they wait: run id -> when the store should wake them (None:
        # only when something arrives in their inbox).
        self._parked: dict[str, float | None] = {}
        # Runs executing here that were admitted by a queue: when one ends or is put aside, a
        # slot of its queue frees, which no other event would tell a worker.
        self._queued: set[str] = set()
        self.start_child_run: ChildStarter | None = None  # the client's, set by the engine
        self._inbox_wake = asyncio.Event()

    @property
    def poll_interval(self) -> float:
        if self.options.poll_interval is not None:
            return self.options.poll_interval
        return NOTIFIED_POLL_INTERVAL if isinstance(self.store, WorkSignal) else POLL_INTERVAL

    @property
    def has_capacity(self) -> bool:
        return len(self.executors) < self.options.max_concurrent_runs

    async def start(self) -> None:
        self._running = True
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="durable-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="durable-heartbeat"),
            asyncio.create_task(self._inbox_loop(), name="durable-inbox"),
        ]

    async def stop(self) -> None:
        """Stop claiming, stop executing, give the leases back so another worker can continue
        at once. Steps cut short run again there (at-least-once); nothing recorded is lost."""
        self._running = False
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        fences = {run_id: ex.log.fence for run_id, ex in self.executors.items() if ex.log}
        logs = [ex.log for ex in self.executors.values() if ex.log is not None]
        for ex in list(self.executors.values()):
            ex.abort()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        # What the executions appended (a step's result waiting for its write-behind) is
        # written before the leases go back: a release first would make those writes stale
        # and the next worker would run the step again.
        pending = [durable for run_log in logs if (durable := run_log.all_durable()) is not None]
        await asyncio.gather(*pending, return_exceptions=True)
        releases = [Release(run_id, fence) for run_id, fence in fences.items() if fence is not None]
        try:
            await self.store.release_leases(releases)
        except StorageError as exc:
            log.warning("could not release %d leases (they will expire): %s", len(releases), exc)
        with contextlib.suppress(StorageError):
            await self.store.remove_worker(self.owner)
        await self.dag_services.aclose()
        self.step_pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def execute(self, state: RunState, fence: Fence) -> RunExecutor | DagExecutor | None:
        """Start executing a run this worker holds the lease of."""
        workflow = self.registry.get(state.workflow, state.version)
        if workflow is None:  # claims are filtered by registered versions: only a race lands here
            log.warning(
                "run %s: workflow %s@%s not registered here",
                state.run_id,
                state.workflow,
                state.version,
            )
            return None
        if workflow.dag is not None and state.fingerprint not in ("", workflow.fingerprint):
            # A DAG run continues only on the definition it started on: a file edited under
            # the same version would re-interpret its log. Leave it for a worker that has it.
            log.error(
                "run %s: DAG %s@%s here differs from the definition the run started with "
                "(fingerprint %s, here %s); leaving it for a worker with that definition "
                "(a changed definition needs a new version)",
                state.run_id,
                state.workflow,
                state.version,
                state.fingerprint[:12],
                workflow.fingerprint[:12],
            )
            release = Release(state.run_id, fence, ready_at=time.time() + QUARANTINE_SECONDS)
            task = asyncio.ensure_future(self.store.release_leases([release]))
            task.add_done_callback(_ignore_result)
            return None
        run_log = RunLog(
            self.store,
            state,
            fence,
            on_durable=self.notifier.notify,
            on_failed=functools.partial(self._write_failed, state.run_id),
            on_cancels_sent=self._cancel_waiting,
        )
        executor: RunExecutor | DagExecutor
        if workflow.dag is not None:
            if self.options.snapshot_every > 0:
                run_log.snapshots = Snapshots(self.store, state, self.options.snapshot_every)
            executor = DagExecutor(state, workflow, run_log, self.dag_services)
            executor.idle.on_idle = self._put_aside  # it may wait for delays to end
        else:
            executor = RunExecutor(
                state, workflow, run_log, step_pool=self.step_pool, registry=self.registry
            )
            executor.on_idle = self._idle_run
            executor.start_child_run = self.start_child_run
        self.executors[state.run_id] = executor
        if state.continuation is not None:
            chain = asyncio.ensure_future(self._record_history(state))
            chain.add_done_callback(_log_failure)
        task = executor.start()
        self.tasks[state.run_id] = task
        task.add_done_callback(functools.partial(self._finished, state.run_id))
        return executor

    def _cancel_waiting(self, run_ids: tuple[str, ...]) -> None:
        """A commit asked these runs (children) to cancel: those still waiting in a queue end
        now (durable.queues._cancel), not when their queue admits them."""
        task = asyncio.ensure_future(self._end_waiting(run_ids))
        task.add_done_callback(_log_failure)

    async def _end_waiting(self, run_ids: tuple[str, ...]) -> None:
        for run_id in run_ids:
            try:
                run = await self.store.get_run(run_id)
                if run is not None and await cancel_if_waiting(self.store, run):
                    self.notifier.notify(run_id)
                    self.wake_inbox()  # its parent, executing here, learns it at once
            except StorageError as exc:  # the request stays in its inbox: delivered later
                log.warning("run %s: could not end it while it waits: %s", run_id, exc)

    def _write_failed(self, run_id: str, exc: BaseException) -> None:
        executor = self.executors.get(run_id)
        if isinstance(exc, LeaseLostError):
            self.stale_writes += 1
            log.warning("run %s: lease lost, another worker continues it (%s)", run_id, exc)
        else:
            log.error("run %s: writing to the log failed, execution stopped: %r", run_id, exc)
        if executor is not None:
            executor.abort()

    def _idle_run(self, executor: RunExecutor) -> None:
        """The run only waits. Put it aside if the wait is long: see park_after. Never a run
        that can make progress or that nothing would wake (checked: park_problem)."""
        if executor.updates.before_idle():  # it took an update (or rejects one): not idle
            return
        problem = executor.park_problem()
        if problem is not None:
            log.error(
                "run %s: not parked although it looked idle: %s; it keeps executing",
                executor.state.run_id,
                problem,
            )
            executor.waits.repair()
            # Look again a little later (not at once: a lasting problem must not spin).
            asyncio.get_running_loop().call_later(REPAIR_LOOK_DELAY, executor.poke)
            return
        wake = executor.waits.idle_until()
        deadline = executor.state.deadline
        if deadline is not None:
            wake = deadline if wake is None else min(wake, deadline)
        self._put_aside(executor, wake)

    def _put_aside(self, executor: RunExecutor | DagExecutor, wake: float | None) -> None:
        """Park the run if its wait (until `wake`, None: until something is sent to it) is
        long: the execution stops and _finished gives the lease back (_park)."""
        if wake is not None and wake - time.time() <= self.options.park_after:
            return
        run_id = executor.state.run_id
        if run_id in self._parked or executor.log is None or executor.log.fence is None:
            return
        self._parked[run_id] = wake
        executor.abort()

    def _park(self, run_id: str, executor: RunExecutor | DagExecutor) -> None:
        wake = self._parked.pop(run_id)
        run_log = executor.log
        if run_log is None or run_log.failed is not None or run_log.fence is None:
            return  # a write failed: the lease expires and the run is claimed again
        release = Release(run_id, run_log.fence, ready_at=wake, park=wake is None)
        task = asyncio.ensure_future(self._release_durably(run_log, release))
        task.add_done_callback(_ignore_result)

    async def _release_durably(self, run_log: RunLog, release: Release) -> None:
        # Everything appended (a consumed inbox item above all) must be durable first: the
        # store wakes a released run at once if its inbox still holds an item.
        durable = run_log.all_durable()
        if durable is not None:
            await durable
        await self.store.release_leases([release])

    def _finished(self, run_id: str, task: asyncio.Task[None]) -> None:
        executor = self.executors.pop(run_id, None)
        self.tasks.pop(run_id, None)
        if isinstance(executor, RunExecutor) and self._continued(executor):
            return
        if run_id in self._queued:
            self._queued.discard(run_id)
            self._queue_slot_freed()
        if run_id in self._parked:
            if executor is not None:
                self._park(run_id, executor)
            else:
                self._parked.pop(run_id)
            if self._starved:
                self.wake()
            return
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, LeaseLostError):
                log.error("run %s: execution stopped: %r", run_id, exc)
        if executor is None or executor.log is None or not self._running:
            return
        run_log = executor.log
        # The state follows appends optimistically: it says "finished" as soon as the final
        # event is appended. Finished means durably so: no write of this execution failed.
        finished = executor.state.finished and run_log.failed is None
        if finished:
            self._write_failures.pop(run_id, None)
        if finished or isinstance(run_log.failed, LeaseLostError):
            if self._starved:
                self.wake()
            return
        # Stopped without finishing (a write failed, e.g. a full disk): give the run back, to
        # be tried again after a delay that doubles with each consecutive failure of this run
        # here (1 s, 2 s, ... at most RETRY_FAILED_WRITES_MAX), so a lasting fault neither
        # spins nor floods the log.
        failures = self._write_failures.get(run_id, 0) + 1
        self._write_failures[run_id] = failures
        delay = min(2.0 ** (failures - 1), RETRY_FAILED_WRITES_MAX)
        if run_log.fence is not None:
            release = Release(run_id, run_log.fence, ready_at=time.time() + delay)
            task2 = asyncio.ensure_future(self.store.release_leases([release]))
            task2.add_done_callback(_ignore_result)

    def _continued(self, executor: RunExecutor) -> bool:
        """ctx.continue_as_new() committed: execute the new history at once, under the same
        lease (no claim), then hand it what waits in the run's inbox (the continuation left it
        there: signals sent meanwhile, a child's end, a cancel)."""
        state, run_log = executor.continued, executor.log
        if state is None or run_log is None or run_log.fence is None or run_log.failed:
            return False
        if not self._running:
            return True  # durable: the next worker to claim the run resumes the new history
        run_id = state.run_id
        # An inbox read in flight may still hand over an item the old history consumed (its
        # delete is in a commit the read did not see): the new state refuses it as the old one
        # would have.
        state.inbox_ids |= executor.state.inbox_ids
        if self.execute(state, run_log.fence) is None:
            self._queued.discard(run_id)
            return True
        task = asyncio.ensure_future(self._pull_inbox([run_id]))
        task.add_done_callback(_log_failure)
        return True

    async def _record_history(self, state: RunState) -> None:
        """The chain of a continued run's histories, and the events of those older than the
        previous one deleted (Store.record_history; idempotent, so a crash before it is made
        good by the next execution of this history)."""
        link = state.continuation
        assert link is not None
        mark = HistoryMark(
            generation=state.generation,
            first_seq=state.history_start,
            started_at=state.created_at or time.time(),
            previous_first_seq=link.previous_start,
            previous_last_seq=link.continued_from,
            previous_started_at=link.previous_started_at,
            keep=self.options.keep_histories,
        )
        try:
            await self.store.record_history(state.run_id, mark)
        except StorageError as exc:
            log.warning("run %s: recording its history chain failed: %s", state.run_id, exc)

    def _queue_slot_freed(self) -> None:
        """A queued run ended (or was put aside) here: admit again now rather than at the next
        poll, here and, through the store, in every other worker."""
        self.wake()
        if isinstance(self.store, WorkSignal):
            task = asyncio.ensure_future(self.store.notify_work())
            task.add_done_callback(_ignore_result)

    async def _claim_loop(self) -> None:
        opts = self.options
        while self._running:
            # Cleared before claiming, not after: a slot freed while the claim is in flight
            # must still wake the idle below.
            self._wake.clear()
            claimed = 0
            free = opts.max_concurrent_runs - len(self.executors)
            self._starved = free <= 0
            if free > 0:
                try:
                    claims = await self.store.claim_runs(
                        self.owner,
                        limit=min(free, opts.claim_batch),
                        lease_ttl=opts.lease_ttl,
                        now=time.time(),
                        eligible=self.registry.keys(),
                        # A late heartbeat can let the lease of a run still executing here
                        # lapse: claiming it again would fence out our own executor.
                        exclude=list(self.executors),
                    )
                    claimed = len(claims)
                    for claim in claims:
                        await self._resume(claim)
                except StorageError as exc:
                    log.warning("claiming runs failed, retrying: %s", exc)
                # Decided after the claim: one that took the last free slot leaves the loop
                # starved, and only then does a finishing run wake it (else a full worker
                # would claim again only at the next poll, 5 s later on PostgreSQL).
                self._starved = len(self.executors) >= opts.max_concurrent_runs
            if claimed >= opts.claim_batch:
                continue
            await self._idle(await self._idle_timeout())

    async def _idle_timeout(self) -> float:
        """The poll, or less if a queued run's delay ends or a queue's rate window frees a
        start before it (nothing else would wake the claim then)."""
        if self._starved:
            return self.poll_interval  # no slot to admit into: a finishing run wakes us
        try:
            soon = await self.store.next_admission(now=time.time())
        except StorageError:
            return self.poll_interval
        if soon is None:
            return self.poll_interval
        # A millisecond past: the rate window counts admissions after now - period.
        return min(self.poll_interval, max(soon - time.time() + 0.001, 0.0))

    async def _idle(self, timeout: float) -> None:
        """Sleep until there may be work: woken by this process (a run started here, a slot
        freed), by the store when another process made a run claimable (LISTEN/NOTIFY on
        PostgreSQL), or at the latest by the poll (timers, expired leases)."""
        if not isinstance(self.store, WorkSignal):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            return
        waits = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._store_signal(self.store, timeout)),
        }
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _store_signal(self, store: WorkSignal, timeout: float) -> None:
        try:
            await store.wait_for_work(timeout)
        except StorageError as exc:
            # Listening failed (the database is down): wait out the poll rather than spin.
            log.debug("waiting for work notifications failed: %s", exc)
            await asyncio.sleep(timeout)

    async def _resume(self, claim: Claim) -> None:
        run_id = claim.run.run_id
        try:
            workflow = self.registry.get(claim.run.workflow, claim.run.version)
            dag = workflow is not None and workflow.dag is not None
            snapshot = dag and self.options.snapshot_every > 0
            state = await load_state(
                self.store, run_id, snapshot=snapshot, last_seq=claim.run.last_seq
            )
        except (CorruptEventError, EventChecksumError) as exc:  # undecodable, or changed bytes
            log.error("%s (retrying in %.0fs)", exc, QUARANTINE_SECONDS)
            await self.store.release_leases(
                [Release(run_id, claim.fence, ready_at=time.time() + QUARANTINE_SECONDS)]
            )
            return
        if state.finished:
            return
        verb = "starting" if state.last_seq == 1 else "resuming"
        # What arrived while nobody executed the run (a signal, a cancellation, a child's
        # end) goes into its log first: the replay then finds the wait it ends.
        log.info(
            "%s run %s (%s@%s) after event %d",
            verb,
            run_id,
            state.workflow,
            state.version,
            state.last_seq,
        )
        items = await self._read_inbox([run_id])
        # Delivered before the execution's task first runs: the replay finds them recorded.
        if self.execute(state, claim.fence) is not None:
            if claim.run.queue is not None:
                self._queued.add(run_id)  # (its task's end runs later: _finished finds it)
            for item in items:
                self._deliver(item)

    def wake_inbox(self) -> None:
        """Something was sent to a run this process may be executing: look at once."""
        self._inbox_wake.set()

    def wake_inbox_for(self, run_id: str) -> None:
        """Another process announced a change to `run_id` (an item sent to its inbox): look at
        once if the run executes here."""
        if run_id in self.executors and run_id not in self._parked:
            self._inbox_wake.set()

    async def _inbox_loop(self) -> None:
        while self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._inbox_wake.wait(), self.poll_interval)
            self._inbox_wake.clear()
            held = [r for r in self.executors if r not in self._parked]
            if held:
                await self._pull_inbox(held)

    async def _pull_inbox(self, run_ids: list[str]) -> None:
        for item in await self._read_inbox(run_ids):
            self._deliver(item)

    async def _read_inbox(self, run_ids: list[str]) -> list[InboxItem]:
        try:
            return await self.store.read_inbox(run_ids)
        except StorageError as exc:
            # The items stay in the inbox: the next look (each poll) delivers them.
            log.warning("reading the inbox failed (will retry): %s", exc)
            return []

    def _deliver(self, item: InboxItem) -> None:
        executor = self.executors.get(item.run_id)
        if executor is None or item.run_id in self._parked:
            return
        if isinstance(executor, RunExecutor):
            if item.kind == UPDATE_ITEM_KIND:
                executor.updates.deliver(item)
            else:
                executor.waits.deliver(item)
        else:
            executor.deliver(item)

    async def _heartbeat_loop(self) -> None:
        interval = self.options.lease_ttl / 3
        while self._running:
            try:
                # What this worker can run, so the CLI can tell a run waiting for a version
                # no live worker has.
                await self.store.heartbeat_worker(
                    self.owner,
                    self.registry.keys(),
                    now=time.time(),
                    ttl=self.options.lease_ttl,
                )
            except StorageError as exc:
                log.warning("worker heartbeat failed: %s", exc)
            await asyncio.sleep(interval)
            try:
                # Only the runs executing here: a run whose executor stopped without giving
                # its lease back (the release failed) must expire, not stay leased forever.
                await self.store.renew_leases(
                    self.owner,
                    lease_ttl=self.options.lease_ttl,
                    now=time.time(),
                    run_ids=list(self.executors),
                )
            except StorageError as exc:
                log.warning("renewing leases failed (will retry in %.1fs): %s", interval, exc)


def _ignore_result(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("releasing a lease failed: %s", fut.exception())


def _log_failure(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("ending waiting runs asked to cancel failed: %r", fut.exception())
