"""Executing a DAG run on the event log.

There is no workflow code to re-execute: the run's state is the fold of its log, and the
scheduler (decide()) says, from that state alone, what happens next. Recovery after a crash is
the same as live execution: fold the log, rebuild the step statuses, relaunch what was
running (the attempt loop retries an interrupted attempt under the same number), and go on
deciding. A step instance recorded as succeeded is never run again. A run that only waits for
delays is parked by the worker (see _idle), and resumed the same way.

Each unit of work is an *instance* in the log (see _report): a plain step, one matrix
combination, one loop iteration, or a notification delivery. Instances go through the same
attempt loop as Python steps (durable.runtime._step_runner): StepStarted, then StepCompleted or
StepFailed (retries with the step's policy, timeouts, the crash-loop guard). Skips are
recorded as StepSkipped with the reason.

Conditions (`condition`, `skip_if`, loop `until`, the `condition` action's branches) are
JavaScript evaluated in the sandbox. Their values are not recorded: what they decided is
(StepStarted or StepSkipped), and an evaluation cut short by a crash is simply redone.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from typing import Any

import msgspec

from durable._children import cancel_requests
from durable._codec import NONE_RAW, decode_value, encode_value, error_info
from durable._errors import ErrorInfo, StepFailed
from durable._events import (
    CancelRequested,
    RunCancelled,
    RunCompleted,
    RunFailed,
    StepCompleted,
    StepSkipped,
    StepStarted,
)
from durable._events import StepFailed as StepFailedEvent
from durable._runlog import RunLog, append_end
from durable._state import RunState, StepState
from durable.js import SandboxError
from durable.runtime._registry import NO_RETRY, StepDef, WorkflowDef
from durable.runtime._step_runner import run_step
from storage import InboxItem

from ._expr import ExpressionError, evaluate
from ._graph import DELIVERY_POLICY, Graph, Planned, retry_policy
from ._idle import IdleWatch
from ._inbox import record_item
from ._kinds import StepCall, run_body
from ._loops import body_definition, loop_owners, top_level
from ._model import DagStep
from ._notifications import Delivery, final_deliveries, step_delivery
from ._outcome import end_event, sinks_output
from ._problems import DagDefinitionError
from ._queued import instance_failed, run_queued
from ._report import (
    DELIVERY_PREFIX,
    StepReport,
    instance_name,
    matrix_combos,
    parse_name,
    step_report,
)
from ._schedule import FINISHED, RunOutcome, Scheduler, Skip
from ._scope import StepScope
from ._services import DagServices


class DagExecutor:
    def __init__(
        self, state: RunState, workflow: WorkflowDef, log: RunLog, services: DagServices
    ) -> None:
        assert workflow.dag is not None
        self.state = state
        self.workflow = workflow
        self.log = log
        self.program = workflow.dag
        self.definition = workflow.dag.definition
        self.by_id = {s.id: s for s in self.definition.steps}
        self.owners = loop_owners(self.definition.steps)  # body step -> its loop step
        self.top = Graph.of(Scheduler(top_level(self.definition)))
        self.scheduler = self.top.scheduler
        self.graphs = [self.top]  # the top level, then every loop iteration in progress
        self._bodies: dict[str, Scheduler] = {}
        self.services = services
        self.step_pool = services.step_pool
        self.cancelling = False
        self.loops_done: dict[str, bool] = {}
        self.reports: dict[str, StepReport] = {}
        self.positions: dict[str, list[int]] = collections.defaultdict(list)
        self.queue: dict[str, collections.deque[Planned]] = {}
        self.tasks: dict[asyncio.Task[Any], Planned] = {}
        self.running_by_step: collections.Counter[str] = collections.Counter()
        self.running_steps = 0
        self.limit = state.parallelism or self.definition.parallelism
        self._next_pos = max([*state.steps, *state.forgotten], default=-1) + 1
        self._input = decode_value(state.input) if state.input is not None else None
        given = self._input if self.program.queued_step else None  # see _queued
        self.view = StepScope(
            self.definition, self.owners, self.reports, self._input, self.program.env, given
        )
        self._input = self.view.input
        self.child_waiters: dict[str, asyncio.Future[None]] = {}  # queued instances' children
        self._deliveries_planned = False
        self._recorded_deliveries = {
            s.name: s for s in state.steps.values() if s.name.startswith(DELIVERY_PREFIX)
        }
        self._task: asyncio.Task[None] | None = None
        self.idle = IdleWatch(self)  # the worker sets idle.on_idle to park the run
        self._begun = False  # _main has begun: it can take a cancellation

    # -- lifecycle (the worker's side) -----------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self._main())
        return self._task

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def deliver(self, item: InboxItem) -> None:
        """An item from the run's inbox: a cancellation stops the run (the instances running
        are recorded as cancelled); a signal is recorded (DAG steps do not wait for any)."""
        state = self.state
        if state.finished or item.id in state.inbox_ids:
            return
        if item.kind == "cancel":
            reason = item.payload.decode(errors="replace")
            asked = cancel_requests(self.state, reason, time.time())  # queued steps' children
            self.log.append(CancelRequested(reason, item.id), consume=item.id, send=asked)
            self.cancelling = True
            # Before _main begins (items read when the run is resumed are delivered first),
            # a cancel would stop the task before its handler is in place, and _main finds
            # the recorded request anyway.
            if self._task is not None and self._begun:
                self._task.cancel()
        else:
            record_item(self, item)

    async def _main(self) -> None:
        event: RunCompleted | RunFailed | RunCancelled
        self._begun = True
        try:
            if self.state.cancel_requested:  # recorded before a crash: finish the job
                raise asyncio.CancelledError
            event = await self._drive()
        except asyncio.CancelledError:
            if not (self.cancelling or self.state.cancel_requested):
                raise
            self.cancelling = True
            event = RunCancelled(reason=self.state.cancel_reason)
        except Exception as exc:
            event = RunFailed(error=error_info(exc))
        finally:
            await self._stop_tasks()
        await append_end(self.log, event)

    async def _stop_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # -- the loop --------------------------------------------------------------------------

    async def _drive(self) -> RunCompleted | RunFailed:
        # A syntax error in any expression fails the run before anything runs, not halfway.
        problems = await self.services.syntax_problems(self.definition, self.workflow.fingerprint)
        if problems:
            raise DagDefinitionError(problems)
        await self._rebuild()
        while True:
            final = await self._schedule()
            self._launch()
            if final is not None and not self.tasks and not self.queue:
                if not self._deliveries_planned:
                    self._deliveries_planned = True
                    for delivery in final_deliveries(self, final):
                        self._deliver(delivery)
                    if self.tasks:
                        continue
                return self._end_event(final)
            if not self.tasks:
                pending = [
                    g.name(s) for g in self.graphs for s, v in g.status.items() if v == "pending"
                ]
                raise RuntimeError(
                    f"DAG scheduler stalled with nothing running; pending: {pending[:10]}"
                )
            self.idle.waiting = True
            self.idle.poke()
            try:
                done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.idle.waiting = False
            for task in sorted(done, key=lambda t: self.tasks[t].pos):
                await self._completed(task)

    async def _schedule(self) -> RunOutcome | None:
        """Decide every graph until nothing changes; the top level's outcome once it has one.

        A loop iteration whose body has finished ends here, and that can start the next
        iteration or finish the loop step, so the pass is repeated until no iteration ends.
        """
        while True:
            final = await self._decide(self.top)
            ended = False
            for graph in self.graphs[1:]:
                outcome = await self._decide(graph)
                if outcome is not None:
                    self.graphs.remove(graph)
                    await self._iteration_done(graph, outcome)
                    ended = True
            if not ended:
                return final

    async def _decide(self, graph: Graph) -> RunOutcome | None:
        while True:
            candidates, graph.dirty = graph.dirty, set()
            decision = graph.scheduler.decide_some(
                graph.status, candidates, graph.gates, graph.finished
            )
            for skip in decision.skip:
                self._skip(skip, graph)
            for step_id in decision.start:
                self._activate(step_id, graph)
            if decision.evaluate:
                await asyncio.gather(*(self._gate(s, graph) for s in decision.evaluate))
                graph.dirty.update(decision.evaluate)
                continue
            return decision.final

    def _set(self, step_id: str, status: str, graph: Graph) -> None:
        old = graph.status[step_id]
        graph.status[step_id] = status
        if status in FINISHED and old not in FINISHED:
            graph.finished += 1
            graph.dirty.update(graph.scheduler.dependents[step_id])

    def _skip(self, skip: Skip, graph: Graph) -> None:
        reason = graph.branch_reasons.get(skip.step, skip.reason)
        pos = self._take_pos()
        self.log.append(StepSkipped(pos=pos, name=graph.name(skip.step), reason=reason))
        self.positions[skip.step].append(pos)
        # decide_some() has marked it skipped already and decided its dependents in the
        # same pass; count it and let them be looked at again.
        graph.status[skip.step] = "pending"
        self._set(skip.step, "skipped", graph)
        self._finalize(self.by_id[skip.step], graph)

    def _activate(self, step_id: str, graph: Graph) -> None:
        step = self.by_id[step_id]
        self._set(step_id, "running", graph)
        if step.loop is not None and step.loop.body:
            self._begin_iteration(step, 1)
            return
        queue = self.queue.setdefault(step_id, collections.deque())
        if graph.iteration is not None:
            name = graph.name(step_id)
            queue.append(Planned(name, step, graph, iteration=graph.iteration))
        elif step.matrix:
            for i, combo in enumerate(matrix_combos(step)):
                queue.append(Planned(instance_name(step_id, index=i), step, graph, matrix=combo))
        elif step.loop is not None:
            queue.append(Planned(instance_name(step_id, iteration=1), step, graph, iteration=1))
        else:
            queue.append(Planned(step_id, step, graph))

    def _launch(self) -> None:
        for step_id in list(self.queue):
            queue = self.queue[step_id]
            step = self.by_id[step_id]
            cap = step.parallelism if step.matrix and step.parallelism else len(queue) + 1
            while queue and self.running_by_step[step_id] < cap:
                if self.limit is not None and self.running_steps >= self.limit:
                    return
                self._start(queue.popleft())
            if not queue:
                del self.queue[step_id]

    def _take_pos(self) -> int:
        pos = self._next_pos
        self._next_pos += 1
        return pos

    def _start(self, planned: Planned) -> None:
        prior = planned.prior
        planned.pos = prior.pos if prior is not None else self._take_pos()
        step = planned.step
        if step is not None:
            timeout = step.timeout_seconds if step.kind in ("python", "action") else None
            policy = retry_policy(step)
            self.positions[step.id].append(planned.pos)
            self.running_by_step[step.id] += 1
            self.running_steps += 1
        else:
            timeout, policy = 60.0, DELIVERY_POLICY
        queued = step is not None and step.queue is not None and not self.program.queued_step
        if queued:  # its child run has the step's timeout and retries (see _queued)
            timeout, policy = None, NO_RETRY
        definition = StepDef(
            name=planned.name,
            fn=functools.partial(self._body, planned),
            is_async=True,
            retry=policy,
            timeout=timeout,
            return_type=Any,
            max_crashes=self.services.max_step_crashes,
        )
        input_raw = NONE_RAW
        if planned.matrix or planned.iteration is not None:
            payload = {"matrix": planned.matrix or None, "iteration": planned.iteration}
            input_raw = msgspec.Raw(encode_value(payload, "a step instance's input"))
        # A delay only sleeps (its body cannot take the process down), and a parked run is
        # resumed mid-delay each time something wakes it early: it continues its recorded
        # start rather than counting as a crash-interrupted attempt (see run_step).
        # So does a queued instance, which only waits for its child.
        reattach = queued or (step is not None and step.kind == "action" and step.action == "delay")
        coro = run_step(
            self, self.log, planned.pos, definition, (), {}, input_raw, prior, reattach=reattach
        )
        self.tasks[asyncio.ensure_future(coro)] = planned

    async def _body(self, planned: Planned) -> Any:
        if planned.delivery is not None:
            # Like a step's: the instance's position is kept across retries and crashes.
            return await planned.delivery.send(self, f"{self.state.run_id}:{planned.pos}")
        step = planned.step
        assert step is not None
        if step.queue is not None and not self.program.queued_step:
            return await run_queued(self, planned)
        started = self.state.steps[planned.pos].started_at or time.time()
        matrix, iteration = self.view.place(planned.matrix, planned.iteration)
        call = StepCall(
            run_id=self.state.run_id,
            step=step,
            key=planned.name,
            matrix=matrix,
            iteration=iteration,
            input=self._input,
            deps=self.view.deps(step),
            scope=functools.partial(self.view.scope, step, matrix, iteration),
            program=self.program,
            services=self.services,
            idempotency_key=f"{self.state.run_id}:{planned.pos}",
            first_started_at=started,
            http_results=self.view.http_results(step),
            sleeping=functools.partial(self.idle.asleep, planned.pos),
        )
        return await run_body(call)

    async def _completed(self, task: asyncio.Task[Any]) -> None:
        planned = self.tasks.pop(task)
        step = planned.step
        if step is not None:
            self.running_by_step[step.id] -= 1
            self.running_steps -= 1
        if not task.cancelled():
            exc = task.exception()
            if exc is not None and not isinstance(exc, StepFailed):
                raise exc
        if step is None or planned.graph is None:
            return
        if step.matrix:
            if step.id not in self.queue and not self.running_by_step[step.id]:
                self._finalize(step, planned.graph)
        elif step.loop is not None:
            await self._loop_next(step, self.state.steps[planned.pos], planned.iteration or 1)
        else:
            self._finalize(step, planned.graph)

    # -- loops -----------------------------------------------------------------------------

    def _begin_iteration(self, step: DagStep, n: int, prior: StepState | None = None) -> Graph:
        """Iteration n of a loop over a body: recorded as the loop's instance `id#n` (its
        result is the body's output), whose steps run as a graph of their own."""
        name = instance_name(step.id, iteration=n)
        if prior is None:
            pos = self._take_pos()
            self.positions[step.id].append(pos)
        else:
            pos = prior.pos  # resumed after a crash: recorded as started again, like a step
        self.log.append(StepStarted(pos=pos, name=name, attempt=1))
        body = self._bodies.get(step.id)
        if body is None:
            body = self._bodies[step.id] = Scheduler(body_definition(self.definition, step))
        graph = Graph.of(body, loop=step, iteration=n, pos=pos)
        self.graphs.append(graph)
        return graph

    async def _iteration_done(self, graph: Graph, outcome: RunOutcome) -> None:
        step, n = graph.loop, graph.iteration
        assert step is not None and n is not None
        if outcome.status == "succeeded":
            members = [self.by_id[s] for s in graph.scheduler.order]
            output = sinks_output(self.reports, members)
            result = encode_value(output, f"loop {step.id!r}'s result")
            self.log.append(StepCompleted(pos=graph.pos, result=msgspec.Raw(result)))
        else:
            failed = [
                f"{s} ({self.reports[s].error})" for s, v in graph.status.items() if v == "failed"
            ]
            error = ErrorInfo(
                type="durable.LoopIterationFailed",
                message=f"iteration {n}: {outcome.failed} of {outcome.total} body steps "
                f"failed: {', '.join(failed[:5])}",
                details=dict(outcome.counts()),
            )
            self.log.append(StepFailedEvent(pos=graph.pos, attempt=1, error=error, retryable=False))
        await self._loop_next(step, self.state.steps[graph.pos], n)

    async def _loop_next(self, step: DagStep, last: StepState, iteration: int) -> None:
        """After iteration n of a loop: finish the loop or start iteration n+1."""
        assert step.loop is not None
        if last.status == "succeeded" and iteration < step.loop.max_iterations:
            scope = self.view.scope(step, {})
            scope["result"] = decode_value(last.result) if last.result is not None else None
            scope["iteration"] = iteration
            try:
                pool = await self.services.js()
                done = bool(
                    await evaluate(pool, step.loop.until, scope, where=f"step {step.id!r} until")
                )
            except (ExpressionError, SandboxError) as exc:
                self.loops_done[step.id] = True
                self._fail_now(step, instance_name(step.id, iteration=iteration + 1), exc, self.top)
                return
            if not done:
                nxt = iteration + 1
                if step.loop.body:
                    self._begin_iteration(step, nxt)
                else:
                    self.queue.setdefault(step.id, collections.deque()).append(
                        Planned(
                            instance_name(step.id, iteration=nxt), step, self.top, iteration=nxt
                        )
                    )
                return
        self.loops_done[step.id] = True
        self._finalize(step, self.top)

    # -- finished steps --------------------------------------------------------------------

    def _finalize(self, step: DagStep, graph: Graph) -> None:
        """The step (in `graph`) is finished: fix its status and report, and act on it."""
        instances = {
            self.state.steps[p].name: self.state.steps[p]
            for p in self.positions.get(step.id, ())
            if p in self.state.steps
        }
        member = graph.iteration is not None
        report = step_report(step, instances, self.state, self.loops_done, member=member)
        self.reports[step.id] = report
        if report.status in FINISHED:
            self._set(step.id, report.status, graph)
        if step.action == "condition" and report.status == "succeeded":
            self._branch(step, bool(report.result), graph)
        hook = self.definition.webhooks.on_step
        if hook and report.status in ("succeeded", "failed"):
            self._deliver(step_delivery(hook, self, report, graph.name(step.id)))

    def _branch(self, step: DagStep, taken: bool, graph: Graph) -> None:
        then = step.params.get("then")
        other = step.params.get("else")
        if then is None and other is None:
            then = [s.id for s in self.definition.steps if step.id in s.depends_on]
        for targets, runs_if in ((then or [], True), (other or [], False)):
            for target in targets:
                if taken != runs_if:
                    graph.gates[target] = False
                    graph.branch_reasons[target] = (
                        f"branch not taken: condition {step.id!r} was {str(taken).lower()}"
                    )

    def _fail_now(self, step: DagStep, name: str, exc: BaseException, graph: Graph) -> None:
        """Record a failure that happened before the step could run (its condition threw)."""
        pos = self._take_pos()
        info = error_info(exc)
        self.log.append(StepStarted(pos=pos, name=name, attempt=1))
        self.log.append(StepFailedEvent(pos=pos, attempt=1, error=info, retryable=False))
        self.positions[step.id].append(pos)
        self._finalize(step, graph)

    async def _gate(self, step_id: str, graph: Graph) -> None:
        step = self.by_id[step_id]
        scope = self.view.scope(step, {}, graph.iteration)
        try:
            pool = await self.services.js()
            run = True
            if step.condition is not None:
                where = f"step {step_id!r} condition"
                run = bool(await evaluate(pool, step.condition, scope, where=where))
            if run and step.skip_if is not None:
                where = f"step {step_id!r} skip_if"
                run = not bool(await evaluate(pool, step.skip_if, scope, where=where))
        except (ExpressionError, SandboxError) as exc:
            self._set(step_id, "running", graph)
            self._fail_now(step, graph.name(step_id), exc, graph)
            return
        graph.gates[step_id] = run

    # -- recovery ---------------------------------------------------------------------------

    async def _rebuild(self) -> None:
        """Fold the log's instances back into statuses, queues and relaunches."""
        by_step: dict[str, dict[str, StepState]] = collections.defaultdict(dict)
        for pos, ss in sorted(self.state.steps.items()):
            parsed = parse_name(ss.name)
            if parsed is None:
                continue
            self.positions[parsed[0]].append(pos)
            by_step[parsed[0]][ss.name] = ss
        for step_id in self.top.scheduler.order:
            instances = by_step.get(step_id)
            if instances:
                await self._rebuild_step(self.by_id[step_id], instances, self.top, by_step)

    async def _rebuild_step(
        self,
        step: DagStep,
        instances: dict[str, StepState],
        graph: Graph,
        by_step: dict[str, dict[str, StepState]],
    ) -> None:
        own = instances.get(graph.name(step.id))
        self._set(step.id, "running", graph)
        if own is not None and (own.status == "skipped" or step.matrix or step.loop):
            # Skipped, or (for a matrix or loop step) failed before it could run: its
            # condition threw. Either way it is finished.
            self._finalize(step, graph)
            return
        queue: collections.deque[Planned] = collections.deque()
        if step.matrix:
            for i, combo in enumerate(matrix_combos(step)):
                name = instance_name(step.id, index=i)
                found = instances.get(name)
                if found is None or found.status in ("running", "retrying"):
                    queue.append(Planned(name, step, graph, matrix=combo, prior=found))
            if not queue:
                self._finalize(step, graph)
        elif step.loop is not None:
            iteration = max((parse_name(n) or ("", None, 0))[2] or 0 for n in instances)
            last = instances[instance_name(step.id, iteration=iteration)]
            for member in step.loop.body:
                if by_step.get(member):  # what the body's steps last did, for the scope
                    self._finalize_report(member, by_step[member])
            if last.status not in ("running", "retrying"):
                await self._loop_next(step, last, iteration)
            elif step.loop.body:
                body = self._begin_iteration(step, iteration, prior=last)
                for member in body.scheduler.order:
                    found = by_step.get(member, {}).get(body.name(member))
                    if found is not None:
                        await self._rebuild_step(
                            self.by_id[member], {found.name: found}, body, by_step
                        )
            else:
                queue.append(Planned(last.name, step, graph, iteration=iteration, prior=last))
        elif own is not None and own.status in ("running", "retrying"):
            queue.append(Planned(own.name, step, graph, iteration=graph.iteration, prior=own))
        else:
            self._finalize(step, graph)
        if queue:
            self.queue.setdefault(step.id, collections.deque()).extend(queue)

    def _finalize_report(self, step_id: str, instances: dict[str, StepState]) -> None:
        step = self.by_id[step_id]
        self.reports[step_id] = step_report(step, instances, self.state, None, member=True)

    # -- deliveries and the end -------------------------------------------------------------

    def _deliver(self, delivery: Delivery) -> None:
        recorded = self._recorded_deliveries.get(delivery.name)
        if recorded is not None and recorded.status not in ("running", "retrying"):
            return  # delivered (or given up on) before a crash
        self._start(Planned(delivery.name, None, delivery=delivery, prior=recorded))

    def output(self) -> Any:
        return sinks_output(self.reports, list(self.top.scheduler.definition.steps))

    def _end_event(self, outcome: RunOutcome) -> RunCompleted | RunFailed:
        # Body steps are summed up by their loop step's own error.
        if self.program.queued_step and outcome.status == "failed":
            return instance_failed(self, self.definition.steps[0])  # the step's own error
        top = [r for r in self.reports.values() if r.id not in self.owners]
        return end_event(outcome, top, self.output)
