"""DAG steps that wait in a queue (`queue: emails` on a step).

Each instance of such a step (the step, one matrix combination, one loop iteration) runs as a
child run started in the queue, so admission is the queue's own claim (durable.queues): its
limits hold across every run and worker, and across a worker's kill -9 (a run holds its slot
until it ends). The parent:
- takes the instance's position as for any step (StepStarted), records ChildStarted with
  the run id `<run>.<pos>` (as ctx.start_child names children), and creates the child. A
  replay, or a worker continuing after a crash, finds the ChildStarted and creates the child
  only if it does not exist yet (creation is idempotent on its run id): never a second one;
- waits for the child's end, which reaches its inbox in the child's final commit and is
  recorded as ChildCompleted; meanwhile the run can be parked (nothing else to do) and is
  woken by that end;
- records the child's result as the instance's result, or its failure as the instance's
  failure (the step's retries and timeout run in the child, which has the step's policy).
  `durable retry` of the run resumes a failed child with it (RunResumed.children, as for any
  child run), and the instance's new attempt waits for that same child again.

The child is a one-step DAG workflow, `<dag>/<step>`, registered with the DAG (any worker that
has the DAG has it): the step without its dependencies, condition, matrix, loop or queue. Its
input is what the step's expressions see (the run's input, the steps so far, the
dependencies' results, the matrix values or iteration), taken when the instance starts, so the
child evaluates the step's templates as the parent would have; never the variables the
operator exposes as `env` (each worker reads its own).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from durable._codec import decode_value
from durable._errors import ErrorInfo, InvalidIdError, QueueError
from durable._events import ChildCompleted, ChildStarted, RunFailed
from durable._runlog import ChildOutcome
from durable.queues._spec import QueueSpec, queue_spec
from storage import InboxItem

from ._model import DagDefinition, DagStep, Location
from ._problems import Problem, problem_at
from ._program import DagProgram

if TYPE_CHECKING:
    from ._graph import Planned
    from ._run import DagExecutor

# Starts a queued child: (workflow, input, run id, version, parent run id, queue) -> (run id,
# workflow, version). The engine provides it (DagServices.start_queued).
QueuedStarter = Callable[[str, Any, str, str, str, str], Awaitable[tuple[str, str, str]]]


class QueuedStepFailed(Exception):
    """The child run of a queued step instance did not succeed: its error, and where."""

    def __init__(self, run_id: str, queue: str, status: str, error: ErrorInfo | None) -> None:
        what = f"{error.type}: {error.message}" if error is not None else status
        super().__init__(f"{what} (in child run {run_id!r}, queue {queue!r}, {status})")
        # A script's exit_code/stdout/stderr, an HTTP status: what expressions and on_error
        # see of the failure, as if the step had failed here.
        self.details = error.details if error is not None else None


def queued_workflow(dag: str, step: str) -> str:
    return f"{dag}/{step}"


def child_run_id(run_id: str, pos: int) -> str:
    return f"{run_id}.{pos}"


def queued_programs(program: DagProgram) -> list[DagProgram]:
    """The one-step DAG of each queued step of `program`, run as its instances' child runs."""
    definition = program.definition
    out = []
    for step in definition.steps:
        if step.queue is None:
            continue
        alone = msgspec.structs.replace(
            step,
            depends_on=(),
            trigger_rule="all_success",
            min_success=None,
            condition=None,
            skip_if=None,
            matrix={},
            parallelism=None,
            loop=None,
            on_error=None,
            queue=None,
        )
        sub = DagDefinition(
            name=queued_workflow(definition.name, step.id),
            version=definition.version,
            title=definition.title,
            steps=(alone,),
            config=definition.config,
            inherit_environment=definition.inherit_environment,
            source=definition.source,
        )
        out.append(DagProgram(sub, program.functions, program.policy, queued_step=True))
    return out


def declared_queues(
    definition: DagDefinition, declared: Mapping[str, QueueSpec]
) -> tuple[list[QueueSpec], list[Problem]]:
    """The queues `definition` declares (checked against those `declared` already: the same
    name must mean the same limits), and a problem for each queue it uses (a step's, its
    default) that neither it nor the application declares."""
    specs: list[QueueSpec] = []
    problems: list[Problem] = []
    top = definition.source
    for name, limits in definition.queues.items():
        here = Location(top.file, top.line, f"$.queues.{name}")
        try:
            spec = queue_spec(name, **limits)
        except (QueueError, InvalidIdError) as exc:  # a definition built in Python
            problems.append(problem_at(str(exc), here))
            continue
        known = declared.get(name)
        if known is not None and known != spec:
            problems.append(
                problem_at(
                    f"queue {name!r} is declared here with other limits than the application's "
                    f"({_limits(spec)}; already {_limits(known)}): declare it once, here or "
                    "with app.queue(...)",
                    here,
                )
            )
            continue
        specs.append(spec)
    return specs, problems + undeclared_queues(definition, declared)


def undeclared_queues(definition: DagDefinition, declared: Iterable[str]) -> list[Problem]:
    """A problem for each queue `definition` uses (a step's, its default) that neither it nor
    the application (`declared`) declares: its runs would wait there forever."""
    top = definition.source
    problems: list[Problem] = []
    names = set(declared) | set(definition.queues)
    hint = (
        "declare it under `queues:` in the definition, or with app.queue(...) before the "
        "definition is registered (`durable validate --queue NAME` if the application does)"
    )
    if definition.queue is not None and definition.queue not in names:
        where = Location(top.file, top.line, "$.queue")
        problems.append(problem_at(f"queue {definition.queue!r} is not declared: {hint}", where))
    for step in definition.steps:
        if step.queue is not None and step.queue == definition.queue:
            problems.append(
                problem_at(
                    f"step {step.id!r}: queue {step.queue!r} is also the queue the runs of "
                    f"{definition.name!r} start in (`queue:`); a run holds its slot until it "
                    "ends, so runs waiting for their steps' instances could hold every slot "
                    "while the instances wait for one, forever: put the step on another queue",
                    step.location,
                    "queue",
                )
            )
        if step.queue is not None and step.queue not in names:
            problems.append(
                problem_at(
                    f"step {step.id!r}: queue {step.queue!r} is not declared: {hint}",
                    step.location,
                    "queue",
                )
            )
    return problems


def _limits(spec: QueueSpec) -> str:
    shown = {
        "concurrency": spec.concurrency,
        "worker_concurrency": spec.worker_concurrency,
        "rate_limit": list(spec.rate_limit) if spec.rate_limit else None,
        "partition_concurrency": spec.partition_concurrency,
    }
    return ", ".join(f"{k}={v}" for k, v in shown.items() if v is not None) or "no limits"


def instance_input(ex: DagExecutor, planned: Planned) -> dict[str, Any]:
    """What the child's step sees (see StepScope.given); never `env`."""
    step = planned.step
    assert step is not None
    scope = ex.view.scope(step, planned.matrix, planned.iteration)
    return {
        "input": scope["input"],
        "steps": scope["steps"],
        "deps": scope["deps"],
        "http": ex.view.http_results(step),
        "matrix": planned.matrix,
        "iteration": planned.iteration,
    }


async def run_queued(ex: DagExecutor, planned: Planned) -> Any:
    """The parent's side of a queued instance: start its child (once), wait for its end."""
    step = planned.step
    assert step is not None and step.queue is not None
    state = ex.state
    pos = planned.pos
    child = child_run_id(state.run_id, pos)
    name = queued_workflow(ex.definition.name, step.id)
    version = ex.workflow.version
    wait = state.waits.get(pos)
    if wait is None or wait.kind != "child" or wait.child_run_id != child:
        # Recorded before the child is created: the run's end (or cancellation) then asks
        # the child to cancel even if it is cancelled while the creation is in flight.
        ex.log.append(
            ChildStarted(pos=pos, run_id=child, workflow=name, version=version, at_call=True)
        )
    if child not in state.children:
        # Idempotent on the run id: after a crash or a park, the existing child is found
        # (and one whose creation the crash cut short is created now).
        start = ex.services.start_queued
        if start is None:
            raise RuntimeError(
                f"step {step.id!r} waits in queue {step.queue!r}: only an engine with a "
                "database can start it (open the app, or run a worker)"
            )
        await start(name, instance_input(ex, planned), child, version, state.run_id, step.queue)
    while child not in state.children:
        waiter = ex.child_waiters.get(child)
        if waiter is None or waiter.done():
            waiter = ex.child_waiters[child] = asyncio.get_running_loop().create_future()
        # Nothing to do before the child ends: the worker may park the run (its end wakes it).
        with ex.idle.asleep(pos, math.inf):
            await waiter
    end = state.children[child]
    if end.status == "succeeded":
        return decode_value(end.result)
    raise QueuedStepFailed(child, step.queue, end.status, end.error)


def child_ended(ex: DagExecutor, item: InboxItem) -> None:
    """A child run's end, from the run's inbox: recorded, and its waiting instance woken."""
    outcome = msgspec.msgpack.decode(item.payload, type=ChildOutcome)
    end = ChildCompleted(
        run_id=item.name,
        status=outcome.status,
        result=msgspec.Raw(outcome.result or b"\xc0"),
        error=outcome.error,
        inbox_id=item.id,
    )
    ex.log.append(end, consume=item.id)
    waiter = ex.child_waiters.pop(item.name, None)
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def instance_failed(ex: DagExecutor, step: DagStep) -> RunFailed:
    """The end of a queued instance's child whose step failed: the step's own error (its
    parent records it as the instance's failure)."""
    errors = [
        state.error
        for pos in ex.positions.get(step.id, ())
        if (state := ex.state.steps.get(pos)) is not None and state.error is not None
    ]
    if errors:
        return RunFailed(error=errors[-1])
    return RunFailed(error=ErrorInfo(type="durable.DagFailed", message=f"step {step.id!r} failed"))
