"""What the CLI, the HTTP API and the SDK show of queues: each declared queue's limits and
where it stands (waiting, running, admitted within the rate window, oldest waiting run)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from durable._errors import QueueNotFoundError
from storage import QueueRecord, QueueStats, RunQueue, Store


@dataclass(frozen=True)
class QueueInfo:
    name: str
    concurrency: int | None
    worker_concurrency: int | None
    rate_limit: int | None
    rate_period: float | None
    partition_concurrency: int | None
    waiting: int
    running: int
    admitted_recently: int
    oldest_waiting: float | None  # created_at of the oldest waiting run

    @property
    def why_waiting(self) -> str:
        """Why the queue's waiting runs wait, as `runs show` and the API say it."""
        if self.concurrency is not None and self.running >= self.concurrency:
            return f"queued: {self.name} is at its limit {self.concurrency}"
        if self.rate_limit is not None and self.admitted_recently >= self.rate_limit:
            return (
                f"queued: {self.name} is at its rate limit {self.rate_limit} per "
                f"{self.rate_period:g} s"
            )
        return f"queued: waiting for a worker to admit it from {self.name}"


def info(record: QueueRecord, stats: QueueStats) -> QueueInfo:
    return QueueInfo(
        name=record.name,
        concurrency=record.concurrency,
        worker_concurrency=record.worker_concurrency,
        rate_limit=record.rate_limit,
        rate_period=record.rate_period,
        partition_concurrency=record.partition_concurrency,
        waiting=stats.waiting,
        running=stats.running,
        admitted_recently=stats.admitted_recently,
        oldest_waiting=stats.oldest_waiting,
    )


async def list_queues(store: Store, now: float | None = None) -> list[QueueInfo]:
    """Every queue declared in the database, by name."""
    at = time.time() if now is None else now
    return [info(r, await store.queue_stats(r.name, now=at)) for r in await store.list_queues()]


async def show_queue(store: Store, name: str, now: float | None = None) -> QueueInfo:
    record = await store.get_queue(name)
    if record is None:
        known = ", ".join(r.name for r in await store.list_queues()) or "none"
        raise QueueNotFoundError(
            f"no queue {name!r} is declared in this database (declared: {known})"
        )
    at = time.time() if now is None else now
    return info(record, await store.queue_stats(name, now=at))


async def waiting_reason(store: Store, place: RunQueue, now: float | None = None) -> str:
    """Why a waiting run waits, and its place: "queued: emails is at its limit 10; 3 runs
    ahead"."""
    at = time.time() if now is None else now
    record = await store.get_queue(place.queue)
    if record is None:
        return f"queued: {place.queue} is not declared by any process yet"
    why = info(record, await store.queue_stats(place.queue, now=at)).why_waiting
    ahead = "no run" if place.ahead == 0 else f"{place.ahead} run" + "s" * (place.ahead != 1)
    return f"{why}; {ahead} ahead"
