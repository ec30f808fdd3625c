"""PostgreSQL's queue operations (storage._queue_ops explains admission).

Many workers claim at once here, so admission takes the queue's row lock first (FOR UPDATE
SKIP LOCKED, held until the claim's transaction commits): the counts it reads are then those
every earlier admission of the queue committed, and two workers never fill the same free slot.
A worker that finds the row locked skips the queue this round (another is admitting it; the
next claim or notification comes back to it). Two starts with the same dedupe key serialize on
a transaction-scoped advisory lock of (queue, key), so the second sees the first's run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from storage._checksum import checksum_of
from storage._errors import DedupeKeyHeldError
from storage._queue_ops import (
    ACTIVE,
    INSERT_QUEUED_COLUMNS,
    LIVE_HOLDER,
    NEXT_ADMISSION,
    REOPEN_HOLDER,
    REOPEN_KEY,
    SQLITE_GET,
    SQLITE_LIST,
    SQLITE_RUN_QUEUE,
    SQLITE_UPSERT,
    QueueRecord,
    free_slots,
    queued_args,
    row_to_queue,
)
from storage._records import Claim, EventRecord, Fence, NewRun, RunRecord, created_record
from storage._sql_text import numbered

PG_UPSERT = numbered(SQLITE_UPSERT)
PG_LIST = SQLITE_LIST
PG_GET = numbered(SQLITE_GET)
PG_STATS = f"""
SELECT
    count(*) FILTER (WHERE admitted_at IS NULL AND status IN {ACTIVE}),
    count(*) FILTER (WHERE admitted_at IS NOT NULL AND status IN {ACTIVE}),
    count(*) FILTER (WHERE admitted_at > $1),
    min(created_at) FILTER (WHERE admitted_at IS NULL AND status IN {ACTIVE})
FROM durable_runs WHERE queue = $2
"""
PG_RUN_QUEUE = numbered(SQLITE_RUN_QUEUE)
PG_AHEAD = f"""
SELECT count(*) FROM durable_runs WHERE queue = $1 AND admitted_at IS NULL AND status IN {ACTIVE}
    AND (coalesce(priority, 0) > $2 OR (coalesce(priority, 0) = $2
        AND (ready_at, created_at, run_id) < ($3, $4, $5)))
"""
PG_NEXT_ADMISSION = NEXT_ADMISSION.format(now="$1::float8")
_LOCK_KEY = "SELECT pg_advisory_xact_lock($1)"
_LIVE_HOLDER = numbered(LIVE_HOLDER)
_INSERT_QUEUED = (
    f"INSERT INTO durable_runs ({INSERT_QUEUED_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
    "ON CONFLICT DO NOTHING"
)
_INSERT_EVENT = (
    "INSERT INTO durable_events (run_id, seq, type, data, created_at, checksum) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
# NULL arrays: any workflow.
_ELIGIBLE = (
    "($2::text[] IS NULL OR (workflow, version) IN "
    "(SELECT w, v FROM unnest($2::text[], $3::text[]) AS e(w, v)))"
)
# Oldest waiting run's queue first (storage._queue_ops._WAITING_QUEUES says why).
_WAITING_QUEUES = (
    "SELECT queue FROM durable_runs WHERE queue IS NOT NULL AND admitted_at IS NULL "
    f"AND status IN {ACTIVE} AND ready_at IS NOT NULL AND ready_at <= $1 AND {_ELIGIBLE} "
    "GROUP BY queue ORDER BY min(ready_at), queue"
)
_LOCK_QUEUE = PG_GET + " FOR UPDATE SKIP LOCKED"
_COUNTS = f"""
SELECT
    count(*) FILTER (WHERE admitted_at IS NOT NULL AND status IN {ACTIVE}),
    count(*) FILTER (WHERE admitted_at IS NOT NULL AND status IN {ACTIVE} AND owner = $1
        AND lease_expires_at >= $2),
    count(*) FILTER (WHERE admitted_at > $3)
FROM durable_runs WHERE queue = $4
"""
# As storage._queue_ops._CANDIDATES.
_CANDIDATES = f"""
SELECT run_id FROM (
    SELECT run_id, priority, ready_at, created_at, partition_key,
        row_number() OVER (PARTITION BY partition_key
            ORDER BY coalesce(priority, 0) DESC, ready_at, created_at, run_id) AS rank,
        (SELECT count(*) FROM durable_runs AS a WHERE a.queue = w.queue
            AND a.partition_key = w.partition_key AND a.admitted_at IS NOT NULL
            AND a.status IN {ACTIVE}) AS held
    FROM durable_runs AS w
    WHERE queue = $4 AND admitted_at IS NULL AND status IN {ACTIVE}
        AND ready_at IS NOT NULL AND ready_at <= $1 AND {_ELIGIBLE}
) AS c WHERE $5::int IS NULL OR partition_key IS NULL OR rank + held <= $5::int
ORDER BY coalesce(priority, 0) DESC, rank + held, ready_at, created_at, run_id
LIMIT $6
"""
# Re-checked by the UPDATE itself: a run cancelled meanwhile is not admitted, nor one whose
# ready_at a debounced call pushed back meanwhile (storage._debounce_pg).
_ADMIT = """
UPDATE durable_runs SET owner = $1, epoch = epoch + 1, lease_expires_at = $2, admitted_at = $3
WHERE run_id = ANY($4::text[]) AND admitted_at IS NULL AND status IN {active}
    AND ready_at <= $3
RETURNING {columns}
"""


def dedupe_lock(queue: str, key: str) -> int:
    digest = hashlib.blake2b(f"durable.dedupe:{queue}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def create_queued(
    conn: Any,
    run: NewRun,
    first: EventRecord,
    select_run: str,
    row_to_run: Callable[[Any], RunRecord],
) -> tuple[RunRecord, bool]:
    """Create a queued run, or return the run that has its id or holds its dedupe key."""
    assert run.queue is not None
    if run.dedupe_key is not None:
        await conn.execute(_LOCK_KEY, dedupe_lock(run.queue, run.dedupe_key))
    found = await conn.fetchrow(select_run, run.run_id)
    if found is None and run.dedupe_key is not None:
        holder = await conn.fetchval(_LIVE_HOLDER, run.queue, run.dedupe_key)
        if holder is not None:
            found = await conn.fetchrow(select_run, holder)
    if found is not None:
        return row_to_run(found), False
    record = created_record(run, first)
    status = await conn.execute(_INSERT_QUEUED, *queued_args(run, record))
    if str(status).endswith(" 0"):  # an insert of the same id committed meanwhile
        return row_to_run(await conn.fetchrow(select_run, run.run_id)), False
    await conn.execute(
        _INSERT_EVENT,
        first.run_id,
        first.seq,
        first.type,
        first.data,
        first.created_at,
        checksum_of(first),
    )
    return record, True


async def check_reopen_key(conn: Any, run_id: str) -> None:
    """Refuse to reopen a queued run whose dedupe key another unfinished run now holds. Under
    the key's advisory lock, as a queued create takes it: a start with the key waits for the
    reopen to commit, then sees the reopened run as the holder."""
    found = await conn.fetchrow(REOPEN_KEY.format(p="$1"), run_id)
    if found is None or found[0] is None or found[1] is None:
        return
    queue, key = found[0], found[1]
    await conn.execute(_LOCK_KEY, dedupe_lock(queue, key))
    holder = await conn.fetchval(REOPEN_HOLDER.format(q="$1", k="$2", p="$3"), queue, key, run_id)
    if holder is not None:
        raise DedupeKeyHeldError(run_id, queue, key, holder)


async def admit(
    conn: Any,
    owner: str,
    limit: int,
    lease_ttl: float,
    now: float,
    eligible: Sequence[tuple[str, str]] | None,
    columns: str,
    active: str,
    row_to_run: Callable[[Any], RunRecord],
) -> list[Claim]:
    """Admit up to `limit` waiting runs (storage._queue_ops.admit), in the caller's
    transaction."""
    if limit <= 0:
        return []
    elig: list[Any] = [None, None]
    if eligible is not None:
        elig = [[w for w, _ in eligible], [v for _, v in eligible]]
    names = [r[0] for r in await conn.fetch(_WAITING_QUEUES, now, *elig)]
    claims: list[Claim] = []
    admit_sql = _ADMIT.format(active=active, columns=columns)
    for name in names:
        if len(claims) >= limit:
            break
        row = await conn.fetchrow(_LOCK_QUEUE, name)
        if row is None:
            continue  # undeclared, or another worker is admitting it now
        queue: QueueRecord = row_to_queue(tuple(row))
        window = now - (queue.rate_period or 0.0)
        running, mine, recent = await conn.fetchrow(_COUNTS, owner, now, window, name)
        free = free_slots(queue, running, mine, recent, limit - len(claims))
        if free <= 0:
            continue
        part = queue.partition_concurrency
        ids = [r[0] for r in await conn.fetch(_CANDIDATES, now, *elig, name, part, free)]
        if not ids:
            continue
        rows = await conn.fetch(admit_sql, owner, now + lease_ttl, now, ids)
        claims += [Claim(run=row_to_run(r), fence=Fence(owner, r["epoch"])) for r in rows]
    return claims
