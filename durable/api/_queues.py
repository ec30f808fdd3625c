"""/queues: the queues declared in the database, their limits, depth, running runs and why
their waiting runs wait, one queue's runs, and a run's place in its queue for its page (reads:
a read token suffices when tokens are configured)."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.params import Parameter

from durable.queues._control import QueueInfo, list_queues, show_queue, waiting_reason
from storage import QueuedRun, RunRecord, Store

from ._responses import errors
from ._schemas import QueueBody, QueueDetail, QueuedRunBody, QueueList, QueuePlace
from ._services import Services
from ._shapes import ms

Name = Parameter(
    min_length=1, max_length=255, pattern=r"^[^\x00]+$", description="The queue's name."
)


def queue_body(q: QueueInfo) -> QueueBody:
    return QueueBody(
        name=q.name,
        concurrency=q.concurrency,
        worker_concurrency=q.worker_concurrency,
        rate_limit=q.rate_limit,
        rate_period_ms=ms(q.rate_period),
        partition_concurrency=q.partition_concurrency,
        waiting=q.waiting,
        running=q.running,
        admitted_recently=q.admitted_recently,
        oldest_waiting_at=ms(q.oldest_waiting),
        why_waiting=q.why_waiting if q.waiting else None,
    )


async def run_place(store: Store, record: RunRecord) -> QueuePlace | None:
    """A run's place in its queue for its page (None: not queued); why it waits only while it
    does (not yet admitted, not ended), as Client.get_run says it."""
    place = await store.run_queue(record.run_id)
    if place is None:
        return None
    waiting = place.admitted_at is None and record.status in ("pending", "running")
    return QueuePlace(
        name=place.queue,
        priority=place.priority,
        partition_key=place.partition_key,
        dedupe_key=place.dedupe_key,
        admitted_at=ms(place.admitted_at),
        ahead=place.ahead if waiting else None,
        why_waiting=await waiting_reason(store, place) if waiting else None,
    )


@get("/queues", summary="List the queues with their limits, depth and running runs")
async def list_all(services: Services) -> QueueList:
    """By name. A queue is listed once a process declaring it (app.queue) has opened the
    database."""
    return QueueList(queues=[queue_body(q) for q in await list_queues(services.client.store)])


def queued_run(r: QueuedRun) -> QueuedRunBody:
    return QueuedRunBody(
        execution_id=r.run_id,
        workflow_id=r.workflow,
        status=r.status,
        priority=r.priority,
        partition_key=r.partition_key,
        admitted_at=ms(r.admitted_at),
        ready_at=ms(r.ready_at),
        start_time=ms(r.created_at) or 0,
    )


@get(
    "/queues/{name:str}",
    summary="One queue, with its admitted and waiting runs",
    responses=errors(404),
)
async def get_one(
    services: Services,
    name: str = Name,
    limit: int = Parameter(query="limit", default=100, ge=1, le=1000),
) -> QueueDetail:
    """The queue as GET /queues lists it, and its unfinished runs: those holding its slots (by
    admission) and those waiting, by priority then age (at most `limit` of each)."""
    store = services.client.store
    body = queue_body(await show_queue(store, name))
    admitted = await store.queue_runs(name, waiting=False, limit=limit)
    waiting = await store.queue_runs(name, waiting=True, limit=limit)
    return QueueDetail(
        **msgspec.structs.asdict(body),
        admitted_runs=[queued_run(r) for r in admitted],
        waiting_runs=[queued_run(r) for r in waiting],
    )
