"""The executor's units: a graph one scheduler works on, and a planned step instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from durable._state import StepState
from durable.runtime._registry import RetryPolicy

from ._deliver import DeliveryConfigError
from ._model import DagStep
from ._notifications import Delivery
from ._report import instance_name
from ._schedule import Scheduler


@dataclass(slots=True, eq=False)
class Graph:
    """What one scheduler works on: the run's top level, or one iteration of a loop's body.

    Each keeps every step's status ("pending" included) current, so a scheduling pass looks
    only at `dirty`: the steps whose waits changed since the last pass.
    """

    scheduler: Scheduler
    status: dict[str, str]
    dirty: set[str]
    finished: int = 0
    gates: dict[str, bool] = field(default_factory=dict)
    branch_reasons: dict[str, str] = field(default_factory=dict)
    loop: DagStep | None = None  # the loop step whose body this is; None at the top level
    iteration: int | None = None
    pos: int = -1  # the position of the loop's `id#n` instance that records the iteration

    @classmethod
    def of(
        cls,
        scheduler: Scheduler,
        loop: DagStep | None = None,
        iteration: int | None = None,
        pos: int = -1,
    ) -> Graph:
        order = scheduler.order
        return cls(
            scheduler, dict.fromkeys(order, "pending"), set(order), 0, {}, {}, loop, iteration, pos
        )

    def name(self, step_id: str) -> str:
        """The log's name for this graph's instance of `step_id` (body steps: `id#n`)."""
        return instance_name(step_id, iteration=self.iteration)


@dataclass(slots=True)
class Planned:
    name: str
    step: DagStep | None  # None for a delivery
    graph: Graph | None = None  # None for a delivery
    matrix: dict[str, Any] = field(default_factory=dict)
    iteration: int | None = None
    delivery: Delivery | None = None
    prior: StepState | None = None
    pos: int = -1


def retry_policy(step: DagStep) -> RetryPolicy:
    r = step.retry
    return RetryPolicy(
        max_attempts=r.max_attempts,
        initial_delay=r.initial_delay_ms / 1000.0,
        backoff=1.0 if r.backoff == "fixed" else max(r.multiplier, 1.0),
        max_delay=(r.max_delay_ms / 1000.0) if r.max_delay_ms is not None else 3600.0,
        linear=r.backoff == "linear",
    )


# A delivery whose notification is unusable (DeliveryConfigError) fails at its first attempt.
DELIVERY_POLICY = RetryPolicy(
    max_attempts=6,
    initial_delay=1.0,
    backoff=2.0,
    max_delay=60.0,
    non_retryable=(DeliveryConfigError,),
)
