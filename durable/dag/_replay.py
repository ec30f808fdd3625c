"""Checking a DAG run's log against its definition: the replay of a run with no code.

A DAG run re-executes nothing; what can diverge is the scheduling. Walking the log event by
event, each decision it records is checked against what decide() says for the state before it:
- every instance belongs to the definition (a known step, a matrix index in range, a loop
  iteration within max_iterations);
- a step's first start happens only when decide() lists it as ready (or waiting for its
  condition, which is JavaScript and not recorded);
- a skip is one decide() makes, or one a condition (or a condition step's branch) can make;
- a loop body's step runs only in an iteration its loop recorded (`loop#n`), and its first
  start in each iteration is checked against the body's own decide();
- the recorded outcome (succeeded / partial / failed) is the one decide() computes at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from durable._events import (
    LoggedEvent,
    RunCompleted,
    RunFailed,
    RunResumed,
    StepSkipped,
    StepStarted,
)
from durable._state import RunState, apply

from ._loops import body_definition, loop_owners, top_level
from ._model import DagDefinition, DagStep
from ._report import matrix_combos, parse_name, step_reports
from ._schedule import Scheduler, StepStatus


def _conditional(definition: DagDefinition, step: DagStep) -> bool:
    """Whether JavaScript (not recorded) may decide this step's fate."""
    if step.condition is not None or step.skip_if is not None:
        return True
    return any(s.action == "condition" and s.id in step.depends_on for s in definition.steps)


def check_dag_log(
    definition: DagDefinition, run_id: str, events: Sequence[LoggedEvent]
) -> tuple[int, str | None]:
    """(the seq of the first event the definition cannot explain or 0, why)."""
    scheduler = Scheduler(top_level(definition))
    by_id = {s.id: s for s in definition.steps}
    owners = loop_owners(definition.steps)
    bodies = {
        s.id: Scheduler(body_definition(definition, s))
        for s in definition.steps
        if s.loop is not None and s.loop.body
    }
    state = RunState(run_id=run_id)
    started: set[str] = set()
    for logged in events:
        event = logged.event
        problem: str | None = None
        if isinstance(event, StepStarted | StepSkipped) and not event.name.startswith("@"):
            parsed = parse_name(event.name)
            assert parsed is not None
            step_id, index, iteration = parsed
            step = by_id.get(step_id)
            if step is None:
                problem = f"step {step_id!r} is not in the definition"
            elif index is not None and not (step.matrix and index < len(matrix_combos(step))):
                problem = f"{event.name!r} is not one of the step's matrix instances"
            elif step_id in owners:
                loop_id = owners[step_id]
                problem = _check_member(bodies[loop_id], loop_id, state, event)
            elif iteration is not None and (
                step.loop is None or iteration > step.loop.max_iterations
            ):
                problem = f"{event.name!r} is not one of the step's loop iterations"
            elif step_id not in started:
                statuses = _statuses(scheduler.definition, state, final=False)
                problem = _check_decision(definition, scheduler, statuses, step, event)
                started.add(step_id)
        elif isinstance(event, RunCompleted | RunFailed):
            statuses = _statuses(scheduler.definition, state, final=True)
            final = scheduler.decide(statuses, cap=False).final
            recorded = event.status if isinstance(event, RunCompleted) else "failed"
            expected = final.status if final is not None else "unfinished steps"
            if final is not None and recorded != expected and not state.cancel_requested:
                problem = f"the run ended {recorded}, the definition gives {expected}"
            elif final is None and isinstance(event, RunCompleted):
                problem = "the run completed with steps still unfinished"
        elif isinstance(event, RunResumed):
            # `durable retry`: the instances it forgets are decided again, and checked again.
            for pos in event.forget:
                forgotten = state.steps.get(pos)
                parsed = parse_name(forgotten.name) if forgotten is not None else None
                if parsed is not None:
                    started.discard(parsed[0])
        if problem is not None:
            return logged.seq, problem
        apply(state, logged.seq, logged.at, event)
    return 0, None


def _statuses(top: DagDefinition, state: RunState, *, final: bool) -> dict[str, StepStatus]:
    """The statuses of the top-level definition's steps (loop bodies folded into their loop)."""
    reports = step_reports(top, state, None)
    out: dict[str, StepStatus] = {}
    for sid, report in reports.items():
        status = report.status
        if status == "running" and final and top.step(sid).loop is not None:
            status = "succeeded"  # a loop whose last iteration succeeded ended at the run's end
        if status != "pending":
            out[sid] = status  # type: ignore[assignment]
    return out


def _check_member(
    body: Scheduler, loop_id: str, state: RunState, event: StepStarted | StepSkipped
) -> str | None:
    """A body step's instance `id#n`: iteration n of its loop must have been recorded, and
    its first start in that iteration must be one the body's decide() allows."""
    parsed = parse_name(event.name)
    assert parsed is not None
    step_id, _, n = parsed
    if n is None:
        return f"{event.name!r} is in loop {loop_id!r}'s body but names no iteration"
    loop_instance = f"{loop_id}#{n}"
    if not any(s.name == loop_instance for s in state.steps.values()):
        return f"{event.name!r} ran, but loop {loop_id!r} never started iteration {n}"
    if any(s.name == event.name for s in state.steps.values()):
        return None  # a retry of an instance already checked
    statuses: dict[str, StepStatus] = {}
    for ss in state.steps.values():
        found = parse_name(ss.name)
        if found is not None and found[2] == n and found[0] in body.by_id:
            status = "running" if ss.status == "retrying" else ss.status
            statuses[found[0]] = status  # type: ignore[assignment]
    step = body.by_id[step_id]
    return _check_decision(body.definition, body, statuses, step, event)


def _check_decision(
    definition: DagDefinition,
    scheduler: Scheduler,
    statuses: dict[str, StepStatus],
    step: DagStep,
    event: StepStarted | StepSkipped,
) -> str | None:
    # Loops that are not failed and have no unfinished iteration may have ended: let
    # dependents see them as succeeded (the `until` that ended them is JavaScript).
    for sid, status in list(statuses.items()):
        if status == "running" and definition.step(sid).loop is not None:
            statuses[sid] = "succeeded"
    decision = scheduler.decide(statuses, cap=False)
    skipped = {s.step for s in decision.skip}
    conditional = _conditional(definition, step)
    if isinstance(event, StepStarted):
        if step.id in decision.start or (conditional and step.id in decision.evaluate):
            return None
        # A condition that threw is recorded as a failed start of a step decide() was
        # waiting to evaluate, or would skip; either way its own rule let it be considered.
        if conditional and step.id not in skipped:
            return None
        return f"step {step.id!r} started, but its dependencies did not allow it yet"
    if step.id in skipped:
        return None
    if conditional and (step.id in decision.evaluate or step.id in decision.start):
        return None  # ready, and then its condition (or a condition step's branch) said skip
    return f"step {step.id!r} was skipped ({event.reason}), but the definition does not skip it"
