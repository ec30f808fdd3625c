"""The DAG scheduler's decision function: from step states to what happens next.

`decide()` is pure and deterministic (no I/O, no clock): the same definition and states always
give the same Decision, so replaying a run's log replays its scheduling decisions exactly.

Step states
    A step is `pending`, `running`, `succeeded`, `failed` or `skipped`; the last three are
    *finished*. Steps missing from `states` are pending.

Order
    Steps are considered in one fixed order: topological, ties broken by declaration order.
    The graph used is the definition's `depends_on` plus the waits error handlers add (below),
    so for a definition without `on_error` it is exactly `topological_order()`.

When a step is decidable
    A pending step is decided once every dependency has a *resolved outcome*:
    succeeded and skipped resolve as themselves; failed resolves as failed, unless the step
    has an `on_error` handler, in which case it waits for the handler: it resolves as
    succeeded ("recovered") if the handler succeeded, else as failed. Rules never fire early
    (one_success does not start on the first success; it waits for every dependency).

Trigger rules (over the resolved outcomes of the dependencies)
    all_success  run iff every dependency succeeded (the default)
    all_done     run whatever the outcomes (YAML `run_always: true`)
    one_success  run iff at least one succeeded
    one_failed   run iff at least one failed
    none_failed  run iff none failed (skipped dependencies are fine)
    min_success  run iff at least `min_success` succeeded
    Otherwise the step is skipped, with a reason naming the rule. A step without dependencies
    always passes its rule. Skipped is not failed: a skip counts as "not succeeded" for
    all_success / one_success / min_success (so a skip propagates down all_success chains),
    is neutral for none_failed and all_done, and never counts as a failure for one_failed.

Conditions (`condition` / `skip_if`)
    They are JavaScript, evaluated elsewhere. A step that passes its rule and has a condition
    or skip_if is listed in `Decision.evaluate` until the caller supplies the evaluated result
    in `gates` (True: run it, False: skip it). A gate given for any other step is honoured too.

Error handlers (`on_error: F`)
    A step named as some step's `on_error` is a handler and runs only for a failure: it waits
    until every step it handles is finished; if none of them failed it is skipped, else its
    own trigger rule (over its own depends_on) applies as usual. If it succeeds, every failed
    step it handles is *recovered*: its dependents see it as succeeded, and the run outcome
    does not count it as a failure. Handlers can have handlers. A definition where this
    waiting would be circular (a handler that depends on a step it handles, directly or
    through dependents) cannot be scheduled: decide() raises ValueError.

Parallelism
    At most `parallelism` (argument, else the definition's `parallelism`, else unlimited)
    steps run at once. Free slots = limit - max(running, steps `running` in states), so
    passing the count of running steps again does not double-count. `start` holds the
    first ready steps in the fixed order, as many as there are free slots. Steps that are
    ready but over the limit stay pending; skips and evaluations are never capped. A matrix
    or loop step is one step here; expanding it is the executor's business.

Run outcome
    `final` is set once every step is finished, counting the skips of the same Decision:
    succeeded  no unrecovered failure (skipped steps and recovered failures are fine)
    partial    some unrecovered failure, and at least one step succeeded
    failed     some unrecovered failure, and no step succeeded
    with counts: succeeded ("completed"), failed (including recovered), recovered, skipped,
    and total; succeeded + failed + skipped == total.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Literal, get_args

import msgspec

from ._model import DagDefinition, DagStep
from ._validate import ordered

StepStatus = Literal["pending", "running", "succeeded", "failed", "skipped"]
RunStatus = Literal["succeeded", "failed", "partial"]
_Resolved = Literal["succeeded", "failed", "skipped"]

FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "skipped"})
_STATUSES: frozenset[str] = frozenset(get_args(StepStatus))


class Skip(msgspec.Struct, frozen=True):
    """Mark `step` skipped, because of `reason`."""

    step: str
    reason: str


class RunOutcome(msgspec.Struct, frozen=True):
    status: RunStatus
    succeeded: int
    failed: int  # every failed step, recovered or not
    recovered: int  # failed steps whose on_error handler succeeded
    skipped: int
    total: int

    @property
    def completed(self) -> int:
        """Steps that completed successfully."""
        return self.succeeded

    def counts(self) -> dict[str, str | int]:
        """The outcome as reported to users (error details, notifications)."""
        return {
            "status": self.status,
            "completed": self.succeeded,
            "failed": self.failed,
            "recovered": self.recovered,
            "skipped": self.skipped,
            "total": self.total,
        }


class Decision(msgspec.Struct, frozen=True):
    start: tuple[str, ...] = ()
    skip: tuple[Skip, ...] = ()
    evaluate: tuple[str, ...] = ()  # ready, waiting for their condition/skip_if result
    final: RunOutcome | None = None


def schedule_order(definition: DagDefinition) -> list[str]:
    """The fixed order decide() considers steps in; ValueError if it cannot be scheduled."""
    out, stuck = ordered(definition, _waits(definition))
    if stuck:
        raise ValueError(
            "cannot schedule: circular waits through dependencies and on_error handlers "
            f"among {', '.join(repr(s) for s in stuck)}"
        )
    return out


def _waits(definition: DagDefinition) -> dict[str, set[str]]:
    """What each step must see finished before it can be decided."""
    by_id = {s.id: s for s in definition.steps}
    waits: dict[str, set[str]] = {s.id: set(s.depends_on) for s in definition.steps}
    for step in definition.steps:
        if step.on_error is not None:
            waits[step.on_error].add(step.id)
        for dep in step.depends_on:
            # Resolving a failed dependency needs its handler chain.
            seen: set[str] = set()
            handler = by_id[dep].on_error
            while handler is not None and handler not in seen:
                seen.add(handler)
                waits[step.id].add(handler)
                handler = by_id[handler].on_error
    return waits


def _resolve(step_id: str, by_id: Mapping[str, DagStep], status: Mapping[str, str]) -> str | None:
    """The outcome dependents see: a failure recovered by its handler reads as success."""
    current = step_id
    seen: set[str] = set()
    while True:
        state = status[current]
        if state not in FINISHED:
            return None
        if state != "failed":
            return state
        handler = by_id[current].on_error
        if handler is None or handler in seen:
            return "failed"
        seen.add(handler)
        if status[handler] == "failed":
            current = handler  # the handler's own handler may still recover it
            continue
        state = status[handler]
        if state not in FINISHED:
            return None
        return "succeeded" if state == "succeeded" else "failed"


def _rule_verdict(step: DagStep, outcomes: list[tuple[str, str]]) -> str | None:
    """None to run the step, else why it is skipped."""
    rule = step.trigger_rule
    if not outcomes or rule == "all_done":
        return None
    succeeded = sum(1 for _, o in outcomes if o == "succeeded")
    failed = [dep for dep, o in outcomes if o == "failed"]
    if rule == "all_success":
        for dep, outcome in outcomes:
            if outcome != "succeeded":
                return f"upstream {dep!r} {outcome} (all_success)"
        return None
    if rule == "one_success":
        return None if succeeded else "no upstream succeeded (one_success)"
    if rule == "one_failed":
        return None if failed else "no upstream failed (one_failed)"
    if rule == "none_failed":
        return f"upstream {failed[0]!r} failed (none_failed)" if failed else None
    need = step.min_success or 1  # min_success
    if succeeded >= need:
        return None
    return f"{succeeded} of {len(outcomes)} upstream succeeded, needs {need} (min_success)"


class Scheduler:
    """decide() for one definition, with the definition's fixed order and handler map worked
    out once. A run decides after every step transition: `decide_some()` looks only at the
    steps a transition can have unblocked, so a run costs O(steps), not O(steps squared)."""

    def __init__(self, definition: DagDefinition) -> None:
        self.definition = definition
        self.by_id = {s.id: s for s in definition.steps}
        self.order = schedule_order(definition)
        self.index = {step_id: i for i, step_id in enumerate(self.order)}
        self.dependents: dict[str, list[str]] = {s: [] for s in self.by_id}
        for step_id, waits in _waits(definition).items():
            for wait in waits:
                self.dependents[wait].append(step_id)
        self.protects: dict[str, list[str]] = {}
        for step in definition.steps:
            if step.on_error is not None:
                self.protects.setdefault(step.on_error, []).append(step.id)

    def decide(
        self,
        states: Mapping[str, StepStatus],
        *,
        running: int = 0,
        parallelism: int | None = None,
        gates: Mapping[str, bool] | None = None,
        cap: bool = True,
    ) -> Decision:
        """See decide(); `cap=False` leaves every ready step in `start` (the caller limits
        what runs, e.g. per matrix instance)."""
        by_id = self.by_id
        status: dict[str, str] = dict.fromkeys(by_id, "pending")
        for step_id, state in states.items():
            if step_id not in by_id:
                raise ValueError(f"unknown step {step_id!r} in states")
            if state not in _STATUSES:
                raise ValueError(f"step {step_id!r} has unknown status {state!r}")
            status[step_id] = state
        limit = parallelism if parallelism is not None else self.definition.parallelism
        if limit is not None and limit < 1:
            raise ValueError(f"parallelism must be at least 1, got {limit}")
        ready: list[str] = []
        skips: list[Skip] = []
        evaluate: list[str] = []
        for step_id in self.order:
            self._consider(step_id, status, gates or {}, ready, skips, evaluate)
        if cap and limit is not None:
            in_use = max(running, sum(1 for s in status.values() if s == "running"))
            ready = ready[: max(0, limit - in_use)]
        final = None
        if all(s in FINISHED for s in status.values()):
            final = _outcome(by_id, status)
        return Decision(
            start=tuple(ready), skip=tuple(skips), evaluate=tuple(evaluate), final=final
        )

    def decide_some(
        self,
        status: dict[str, str],
        candidates: set[str],
        gates: Mapping[str, bool],
        finished: int,
    ) -> Decision:
        """decide(cap=False) for a caller that keeps `status` complete (every step, "pending"
        included) and knows which steps may have become decidable: those whose waits changed
        since the last call. `finished` counts the finished steps in `status`. The same
        decisions as decide(), in the same order. Skips are written into `status`."""
        heap = [self.index[c] for c in candidates]
        heapq.heapify(heap)
        seen: set[int] = set()
        ready: list[str] = []
        skips: list[Skip] = []
        evaluate: list[str] = []
        while heap:
            i = heapq.heappop(heap)
            if i in seen:
                continue
            seen.add(i)
            step_id = self.order[i]
            before = len(skips)
            self._consider(step_id, status, gates, ready, skips, evaluate)
            if len(skips) > before:
                finished += 1
                for dependent in self.dependents[step_id]:
                    heapq.heappush(heap, self.index[dependent])
        final = _outcome(self.by_id, status) if finished == len(self.order) else None
        return Decision(
            start=tuple(ready), skip=tuple(skips), evaluate=tuple(evaluate), final=final
        )

    def _consider(
        self,
        step_id: str,
        status: dict[str, str],
        gates: Mapping[str, bool],
        ready: list[str],
        skips: list[Skip],
        evaluate: list[str],
    ) -> None:
        if status[step_id] != "pending":
            return
        by_id = self.by_id
        step = by_id[step_id]
        guarded = self.protects.get(step_id)
        reason: str | None = None
        if guarded is not None:
            if any(status[p] not in FINISHED for p in guarded):
                return
            if not any(status[p] == "failed" for p in guarded):
                names = ", ".join(repr(p) for p in guarded)
                reason = f"no step it handles failed ({names}; on_error handler)"
        if reason is None:
            outcomes: list[tuple[str, str]] = []
            for dep in step.depends_on:
                outcome = _resolve(dep, by_id, status)
                if outcome is None:
                    return
                outcomes.append((dep, outcome))
            reason = _rule_verdict(step, outcomes)
        if reason is None:
            gate = gates.get(step_id)
            if gate is None and (step.condition is not None or step.skip_if is not None):
                evaluate.append(step_id)
                return
            if gate is False:
                reason = "its condition/skip_if says skip"
        if reason is not None:
            status[step_id] = "skipped"  # so its dependents are decided in this same pass
            skips.append(Skip(step_id, reason))
        else:
            ready.append(step_id)


def decide(
    definition: DagDefinition,
    states: Mapping[str, StepStatus],
    *,
    running: int = 0,
    parallelism: int | None = None,
    gates: Mapping[str, bool] | None = None,
) -> Decision:
    """What to do next for a run of `definition` whose steps are in `states`.

    See the module docstring for the semantics. Raises ValueError for unknown step ids or
    statuses, a parallelism below 1, or a definition whose handlers make waits circular.
    """
    return Scheduler(definition).decide(
        states, running=running, parallelism=parallelism, gates=gates
    )


def _outcome(by_id: Mapping[str, DagStep], status: Mapping[str, str]) -> RunOutcome:
    failed = [s for s, state in status.items() if state == "failed"]
    recovered = sum(1 for s in failed if _resolve(s, by_id, status) == "succeeded")
    succeeded = sum(1 for state in status.values() if state == "succeeded")
    run: RunStatus = "succeeded"
    if recovered < len(failed):
        run = "partial" if succeeded else "failed"
    return RunOutcome(
        status=run,
        succeeded=succeeded,
        failed=len(failed),
        recovered=recovered,
        skipped=sum(1 for state in status.values() if state == "skipped"),
        total=len(status),
    )
