"""What a queue is: its declaration (QueueSpec), checked when it is made, and the row the
store admits by (storage.QueueRecord)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from durable._errors import QueueError
from durable._ids import check_id
from storage import QueueRecord


@dataclass(frozen=True)
class QueueSpec:
    """A queue's limits; None: no such limit.

    concurrency: runs of the queue admitted and unfinished at once, across every worker (a
    run holds its slot until it ends, sleeping or waiting included). worker_concurrency: those
    one worker holds at once. rate_limit: (starts, period seconds), over any window of that
    length. partition_concurrency: admitted unfinished runs per partition_key."""

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    partition_concurrency: int | None = None

    def record(self, now: float) -> QueueRecord:
        count, period = self.rate_limit if self.rate_limit is not None else (None, None)
        return QueueRecord(
            name=self.name,
            concurrency=self.concurrency,
            worker_concurrency=self.worker_concurrency,
            rate_limit=count,
            rate_period=period,
            partition_concurrency=self.partition_concurrency,
            updated_at=now,
        )


def _limit(queue: str, what: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise QueueError(
            f"queue {queue!r}: {what} must be a whole number >= 1 (or None: no limit), "
            f"not {value!r}"
        )
    return value


def queue_spec(
    name: str,
    *,
    concurrency: object = None,
    worker_concurrency: object = None,
    rate_limit: object = None,
    partition_concurrency: object = None,
) -> QueueSpec:
    """A checked QueueSpec: QueueError says which argument is wrong and what it takes."""
    check_id("queue name", name)
    rate: tuple[int, float] | None = None
    if rate_limit is not None:
        count: object = None
        period: object = None
        if isinstance(rate_limit, tuple | list) and len(rate_limit) == 2:
            count, period = rate_limit
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or count < 1
            or isinstance(period, bool)
            or not isinstance(period, int | float)
            or not math.isfinite(period)
            or period <= 0
        ):
            raise QueueError(
                f"queue {name!r}: rate_limit must be (starts, seconds), e.g. (100, 60.0) for "
                f"at most 100 starts in any 60 s, not {rate_limit!r}"
            )
        rate = (count, float(period))
    return QueueSpec(
        name=name,
        concurrency=_limit(name, "concurrency", concurrency),
        worker_concurrency=_limit(name, "worker_concurrency", worker_concurrency),
        rate_limit=rate,
        partition_concurrency=_limit(name, "partition_concurrency", partition_concurrency),
    )
