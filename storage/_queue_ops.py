"""Queue rows and queued runs: the records, the SQL both SQL backends share, and the SQLite
writer's operations (storage._queue_pg has PostgreSQL's).

A queued run is created unowned with `queue` set and `admitted_at` NULL. The ordinary claim
never takes it (ADMITTED below); `admit` does, queue by queue, in the claim's write
transaction: it counts the queue's admitted unfinished runs (a slot is held until the run
ends, whoever holds its lease), the claimer's own, and the admissions of the rate window, and
takes at most what every limit leaves free, by priority (higher first), then a fairness turn
(a partition's waiting runs ranked, plus the runs it already has admitted: the partition
holding the fewest goes first), then ready_at. Setting
admitted_at is what admits: from then on the run is claimed like any other, so an admitted run
whose worker died is taken over without being counted twice.

SQLite's writer holds the database's write lock for the whole transaction, so two admissions
never interleave. PostgreSQL locks the queue's row first (storage._queue_pg).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from storage._checksum import checksum_of
from storage._errors import DedupeKeyHeldError
from storage._records import Claim, EventRecord, Fence, NewRun, RunRecord, created_record


class QueueRecord(msgspec.Struct, frozen=True):
    """A declared queue. None: no such limit. rate_limit starts per rate_period seconds."""

    name: str
    concurrency: int | None = None
    worker_concurrency: int | None = None
    rate_limit: int | None = None
    rate_period: float | None = None
    partition_concurrency: int | None = None
    updated_at: float = 0.0


class QueueStats(msgspec.Struct, frozen=True):
    """Where a queue stands: runs waiting (delayed ones included), admitted and unfinished,
    admitted within the rate window, and the oldest waiting run's created_at."""

    name: str
    waiting: int
    running: int
    admitted_recently: int
    oldest_waiting: float | None


class RunQueue(msgspec.Struct, frozen=True):
    """A queued run's place: its queue columns, and (while it waits) how many waiting runs of
    the queue come before it by priority and age (partition fairness aside)."""

    queue: str
    priority: int
    partition_key: str | None
    dedupe_key: str | None
    admitted_at: float | None
    ahead: int


class QueuedRun(msgspec.Struct, frozen=True):
    """An unfinished run of a queue, as the queue's page lists it (Store.queue_runs)."""

    run_id: str
    workflow: str
    status: str
    priority: int
    partition_key: str | None
    admitted_at: float | None
    ready_at: float | None
    created_at: float


ACTIVE = "('pending', 'running')"
# The ordinary claim's extra condition: a queued run is claimable only once admitted.
ADMITTED = "(queue IS NULL OR admitted_at IS NOT NULL)"
QUEUE_COLUMNS = (
    "name, concurrency, worker_concurrency, rate_limit, rate_period, partition_concurrency, "
    "updated_at"
)
# Columns a queued run's insert writes beyond a plain run's (the queued insert names them all).
INSERT_QUEUED_COLUMNS = (
    "run_id, workflow, version, status, input, parent_run_id, created_at, updated_at, "
    "last_seq, epoch, ready_at, queue, priority, partition_key, dedupe_key"
)

SQLITE_UPSERT = f"""
INSERT INTO durable_queues ({QUEUE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,
    worker_concurrency = excluded.worker_concurrency, rate_limit = excluded.rate_limit,
    rate_period = excluded.rate_period, partition_concurrency = excluded.partition_concurrency,
    updated_at = excluded.updated_at
"""
SQLITE_LIST = f"SELECT {QUEUE_COLUMNS} FROM durable_queues ORDER BY name"
SQLITE_GET = f"SELECT {QUEUE_COLUMNS} FROM durable_queues WHERE name = ?"
# One pass over a queue's unfinished runs (and its recent admissions) for list/show.
SQLITE_STATS = f"""
SELECT
    coalesce(sum(CASE WHEN admitted_at IS NULL AND status IN {ACTIVE} THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN admitted_at IS NOT NULL AND status IN {ACTIVE} THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN admitted_at > ? THEN 1 ELSE 0 END), 0),
    min(CASE WHEN admitted_at IS NULL AND status IN {ACTIVE} THEN created_at END)
FROM durable_runs WHERE queue = ?
"""
SQLITE_RUN_QUEUE = (
    "SELECT queue, coalesce(priority, 0), partition_key, dedupe_key, admitted_at, ready_at, "
    "created_at FROM durable_runs WHERE run_id = ? AND queue IS NOT NULL"
)
# A queue's unfinished runs: the admitted ones by admission, or the waiting ones in the order
# SQLITE_AHEAD counts (priority, then age): the SQL backends fill in their placeholders.
QUEUE_RUNS = f"""
SELECT run_id, workflow, status, coalesce(priority, 0), partition_key, admitted_at, ready_at,
    created_at
FROM durable_runs WHERE queue = {{0}} AND status IN {ACTIVE} AND admitted_at IS {{2}} NULL
ORDER BY admitted_at, coalesce(priority, 0) DESC, coalesce(ready_at, 0), created_at, run_id
LIMIT {{1}}
"""
SQLITE_AHEAD = f"""
SELECT count(*) FROM durable_runs WHERE queue = ? AND admitted_at IS NULL AND status IN {ACTIVE}
    AND (coalesce(priority, 0) > ? OR (coalesce(priority, 0) = ?
        AND (ready_at, created_at, run_id) < (?, ?, ?)))
"""
# When a waiting run may next become admissible by the clock alone, for an idle worker's sleep:
# the soonest end of a waiting run's delay, or the soonest moment a rate window with runs
# waiting lets its oldest admission go. (Slots freed by runs ending wake workers directly.)
NEXT_ADMISSION = f"""
SELECT min(t) FROM (
    SELECT (SELECT min(r.ready_at) FROM durable_runs AS r WHERE r.queue = q.name
        AND r.status IN {ACTIVE} AND r.admitted_at IS NULL AND r.ready_at > {{now}}) AS t
    FROM durable_queues AS q
    UNION ALL
    SELECT (SELECT min(r.admitted_at) FROM durable_runs AS r WHERE r.queue = q.name
        AND r.admitted_at > {{now}} - q.rate_period) + q.rate_period
    FROM durable_queues AS q WHERE q.rate_limit IS NOT NULL AND EXISTS (
        SELECT 1 FROM durable_runs AS w WHERE w.queue = q.name AND w.status IN {ACTIVE}
            AND w.admitted_at IS NULL AND w.ready_at <= {{now}})
) AS soon
"""
SQLITE_NEXT_ADMISSION = NEXT_ADMISSION.format(now="?")  # three times: (now, now, now)
LIVE_HOLDER = (
    f"SELECT run_id FROM durable_runs WHERE queue = ? AND dedupe_key = ? AND status IN {ACTIVE}"
)
_INSERT_QUEUED = (
    f"INSERT INTO durable_runs ({INSERT_QUEUED_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A reopened run is unfinished again, so it would hold its dedupe key again: refused while
# another unfinished run of its queue holds it (started after this one ended). {p}: the
# backend's placeholder of the run id.
REOPEN_KEY = "SELECT queue, dedupe_key FROM durable_runs WHERE run_id = {p}"
REOPEN_HOLDER = (
    "SELECT run_id FROM durable_runs WHERE queue = {q} AND dedupe_key = {k} "
    f"AND status IN {ACTIVE} AND run_id <> {{p}}"
)
_INSERT_EVENT = (
    "INSERT INTO durable_events (run_id, seq, type, data, created_at, checksum) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# The queues with a waiting run that is ready, the one with the oldest such run first (in
# name order, a busy queue early in the alphabet would take every slot of a worker and starve
# the others); the eligibility filter is added by `admit`, the grouping after it.
_WAITING_QUEUES = (
    "SELECT queue, min(ready_at) AS oldest FROM durable_runs WHERE queue IS NOT NULL "
    f"AND admitted_at IS NULL AND status IN {ACTIVE} AND ready_at IS NOT NULL AND ready_at <= ?"
)
_BY_OLDEST = " GROUP BY queue ORDER BY oldest, queue"
_COUNTS = f"""
SELECT
    coalesce(sum(CASE WHEN admitted_at IS NOT NULL AND status IN {ACTIVE} THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN admitted_at IS NOT NULL AND status IN {ACTIVE} AND owner = ?
        AND lease_expires_at >= ? THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN admitted_at > ? THEN 1 ELSE 0 END), 0)
FROM durable_runs WHERE queue = ?
"""
# Waiting runs in admission order. `held` is how many admitted unfinished runs the run's
# partition already has: with a partition limit, rank + held must stay within it; and within a
# priority the partitions take turns by rank + held, so a slot freed on its own goes to the
# partition holding the fewest (by rank alone, a big tenant's next-oldest run would win every
# one-slot admission by age, and a small tenant would wait behind the big one's whole line).
_CANDIDATES = f"""
SELECT run_id FROM (
    SELECT run_id, priority, ready_at, created_at, partition_key,
        row_number() OVER (PARTITION BY partition_key
            ORDER BY coalesce(priority, 0) DESC, ready_at, created_at, run_id) AS rank,
        (SELECT count(*) FROM durable_runs AS a WHERE a.queue = w.queue
            AND a.partition_key = w.partition_key AND a.admitted_at IS NOT NULL
            AND a.status IN {ACTIVE}) AS held
    FROM durable_runs AS w
    WHERE queue = ? AND admitted_at IS NULL AND status IN {ACTIVE}
        AND ready_at IS NOT NULL AND ready_at <= ?{{eligible}}
) WHERE ? IS NULL OR partition_key IS NULL OR rank + held <= ?
ORDER BY coalesce(priority, 0) DESC, rank + held, ready_at, created_at, run_id
LIMIT ?
"""
_ELIGIBLE = (
    " AND (workflow, version) IN (SELECT json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]') FROM json_each(?))"
)


def row_to_queue(row: Sequence[object]) -> QueueRecord:
    return QueueRecord(*row)  # type: ignore[arg-type]  # column order matches the struct


def queue_args(record: QueueRecord) -> tuple[object, ...]:
    return (
        record.name,
        record.concurrency,
        record.worker_concurrency,
        record.rate_limit,
        record.rate_period,
        record.partition_concurrency,
        record.updated_at,
    )


def free_slots(queue: QueueRecord, running: int, mine: int, recent: int, wanted: int) -> int:
    """How many waiting runs one admission may take: what every limit leaves."""
    free = wanted
    if queue.concurrency is not None:
        free = min(free, queue.concurrency - running)
    if queue.worker_concurrency is not None:
        free = min(free, queue.worker_concurrency - mine)
    if queue.rate_limit is not None:
        free = min(free, queue.rate_limit - recent)
    return max(free, 0)


def queued_args(run: NewRun, record: RunRecord) -> tuple[object, ...]:
    return (
        run.run_id,
        run.workflow,
        run.version,
        record.status,
        run.input,
        run.parent_run_id,
        run.created_at,
        run.created_at,
        record.last_seq,
        record.epoch,
        record.ready_at,
        run.queue,
        run.priority,
        run.partition_key,
        run.dedupe_key,
    )


def put_queue(cur: sqlite3.Cursor, record: QueueRecord) -> None:
    cur.execute(SQLITE_UPSERT, queue_args(record))


def create_queued(
    cur: sqlite3.Cursor,
    run: NewRun,
    first: EventRecord,
    select_run: str,
    row_to_run: Callable[[Sequence[object]], RunRecord],
) -> tuple[RunRecord, bool]:
    """Create a queued run, or return the run that has its id or holds its dedupe key (with
    False). Read then write is safe: the writer's BEGIN IMMEDIATE holds the write lock."""
    found = cur.execute(select_run, (run.run_id,)).fetchone()
    if found is None and run.dedupe_key is not None:
        holder = cur.execute(LIVE_HOLDER, (run.queue, run.dedupe_key)).fetchone()
        if holder is not None:
            found = cur.execute(select_run, (holder[0],)).fetchone()
    if found is not None:
        return row_to_run(found), False
    record = created_record(run, first)
    cur.execute(_INSERT_QUEUED, queued_args(run, record))
    cur.execute(
        _INSERT_EVENT,
        (first.run_id, first.seq, first.type, first.data, first.created_at, checksum_of(first)),
    )
    return record, True


def check_reopen_key(cur: sqlite3.Cursor, run_id: str) -> None:
    """Refuse to reopen a queued run whose dedupe key another unfinished run now holds (read
    then write is safe: the writer holds the database's write lock)."""
    queue, key = cur.execute(REOPEN_KEY.format(p="?"), (run_id,)).fetchone()
    if queue is None or key is None:
        return
    sql = REOPEN_HOLDER.format(q="?", k="?", p="?")
    holder = cur.execute(sql, (queue, key, run_id)).fetchone()
    if holder is not None:
        raise DedupeKeyHeldError(run_id, queue, key, holder[0])


async def could_admit(
    read: Callable[[str, tuple[object, ...]], Awaitable[Sequence[Sequence[Any]]]],
    owner: str,
    now: float,
) -> bool:
    """Whether a queue with a waiting, ready run has room for `owner` to admit one (read-only:
    SQLite's idle poll asks this before taking the write lock). Partition limits and the
    worker's workflows are left to the admission itself: this may say yes when it then
    admits nothing, never no when it would admit."""
    for name, _oldest in await read(_WAITING_QUEUES + _BY_OLDEST, (now,)):
        found = await read(SQLITE_GET, (name,))
        if not found:
            continue  # not declared: its runs wait
        queue = row_to_queue(found[0])
        window = now - (queue.rate_period or 0.0)
        counts = await read(_COUNTS, (owner, now, window, name))
        running, mine, recent = counts[0]
        if free_slots(queue, running, mine, recent, 1) > 0:
            return True
    return False


def admit(
    cur: sqlite3.Cursor,
    owner: str,
    limit: int,
    lease_ttl: float,
    now: float,
    eligible: Sequence[tuple[str, str]] | None,
    columns: str,
    row_to_run: Callable[[Sequence[object]], RunRecord],
) -> list[Claim]:
    """Admit up to `limit` waiting runs of the queues that have some, each queue within its
    limits; they come back claimed by `owner`."""
    if limit <= 0:
        return []
    elig_sql, elig_params = "", []
    if eligible is not None:
        elig_sql = _ELIGIBLE
        elig_params = [json.dumps([list(pair) for pair in eligible])]
    claims: list[Claim] = []
    sql = _WAITING_QUEUES + elig_sql + _BY_OLDEST
    names = [r[0] for r in cur.execute(sql, [now, *elig_params])]
    for name in names:
        if len(claims) >= limit:
            break
        row = cur.execute(SQLITE_GET, (name,)).fetchone()
        if row is None:
            continue  # not declared (yet) by any process: its runs wait
        queue = row_to_queue(row)
        window = now - (queue.rate_period or 0.0)
        running, mine, recent = cur.execute(_COUNTS, (owner, now, window, name)).fetchone()
        free = free_slots(queue, running, mine, recent, limit - len(claims))
        if free <= 0:
            continue
        part = queue.partition_concurrency
        ids = [
            r[0]
            for r in cur.execute(
                _CANDIDATES.format(eligible=elig_sql),
                [name, now, *elig_params, part, part, free],
            )
        ]
        if not ids:
            continue
        rows = cur.execute(
            "UPDATE durable_runs SET owner = ?, epoch = epoch + 1, lease_expires_at = ?, "
            "admitted_at = ? WHERE run_id IN (SELECT value FROM json_each(?)) "
            f"RETURNING {columns}",
            (owner, now + lease_ttl, now, json.dumps(ids)),
        ).fetchall()
        claims += [Claim(run=row_to_run(r), fence=Fence(owner, r[13])) for r in rows]
    return claims
