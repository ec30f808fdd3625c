"""A start's queue options (app.start(..., queue=, priority=, partition_key=, dedupe_key=,
delay=)), checked against the queues this process declared before anything is written."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from durable._errors import QueueError
from durable._ids import check_id
from durable.queues._spec import QueueSpec

IfDuplicate = Literal["error", "return"]


@dataclass(frozen=True)
class QueueStart:
    """Where a new run waits. priority: higher is admitted first (default 0). delay: seconds
    before it may be admitted at all."""

    queue: str
    priority: int = 0
    partition_key: str | None = None
    dedupe_key: str | None = None
    delay: float = 0.0
    if_duplicate: IfDuplicate = "error"


def queue_start(
    declared: Mapping[str, QueueSpec],
    queue: str | None,
    *,
    priority: object = None,
    partition_key: object = None,
    dedupe_key: object = None,
    delay: object = None,
    if_duplicate: object = "error",
) -> QueueStart | None:
    """The checked options, or None for a plain (unqueued) start."""
    if queue is None:
        given = {
            "priority": priority,
            "partition_key": partition_key,
            "dedupe_key": dedupe_key,
            "delay": delay,
        }
        named = [k for k, v in given.items() if v is not None]
        if named:
            raise QueueError(
                f"{', '.join(named)} apply to queued runs only; pass queue=... as well"
            )
        return None
    if queue not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise QueueError(
            f"queue {queue!r} is not declared in this application (declared: {known}); "
            f'declare it first with app.queue("{queue}", concurrency=...)'
        )
    if priority is None:
        priority = 0
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) >= 2**31:
        raise QueueError(
            f"queue {queue!r}: priority must be a whole number (higher starts first), "
            f"not {priority!r}"
        )
    if delay is None:
        delay = 0.0
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or not math.isfinite(delay)
        or delay < 0
    ):
        raise QueueError(f"queue {queue!r}: delay must be seconds >= 0, not {delay!r}")
    if if_duplicate not in ("error", "return"):
        raise QueueError(f'if_duplicate must be "error" or "return", not {if_duplicate!r}')
    part = None if partition_key is None else check_id("partition_key", partition_key)
    dedupe = None if dedupe_key is None else check_id("dedupe_key", dedupe_key)
    return QueueStart(
        queue=queue,
        priority=priority,
        partition_key=part,
        dedupe_key=dedupe,
        delay=float(delay),
        if_duplicate=if_duplicate,
    )
