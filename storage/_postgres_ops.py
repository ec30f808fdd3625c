"""The SQL of every PostgreSQL write, as coroutines over an asyncpg connection, run by the writer
inside its batch's transaction.

Each statement has a fixed text, whatever the arguments (lists travel as arrays), so asyncpg
prepares it once per connection and every later call only binds and executes. A refused write
(expected seq, fence) is detected by a checked UPDATE in the same statement as its inserts, so a
refusal changes nothing and the rest of the batch commits without it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from storage import _completions as completions
from storage import _queue_pg as queues
from storage import _streams_pg as streams_pg
from storage._checksum import checksum_of
from storage._errors import (
    InvalidAppendError,
    LeaseLostError,
    RunNotFoundError,
    SequenceConflictError,
)
from storage._queue_ops import ADMITTED
from storage._records import (
    FINAL_STATUSES,
    FORGET_WORKERS_AFTER,
    Append,
    Claim,
    DefinitionRecord,
    EventRecord,
    Fence,
    InboxItem,
    NewInboxItem,
    NewRun,
    Release,
    RunRecord,
    check_append,
    check_history,
    check_reopen,
    created_record,
)
from storage._sql_text import numbered
from storage._updates_sql import CHANGE_UPDATE, change_params
from storage._values_ops import pg_upsert

_COLUMNS = (
    "run_id",
    "workflow",
    "version",
    "status",
    "input",
    "result",
    "error",
    "parent_run_id",
    "created_at",
    "updated_at",
    "finished_at",
    "last_seq",
    "owner",
    "epoch",
    "lease_expires_at",
    "ready_at",
)
# Written by a plain create; a run's reads and RETURNINGs also give its queue (RunRecord.queue).
INSERT_RUN_COLUMNS = ", ".join(_COLUMNS)
RUN_COLUMNS = INSERT_RUN_COLUMNS + ", queue"
_ACTIVE = "('pending', 'running')"
_FINAL = FINAL_STATUSES
_FINAL_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(FINAL_STATUSES)) + ")"

SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM durable_runs WHERE run_id = $1"
SELECT_EVENTS = (
    "SELECT seq, type, data, created_at, checksum FROM durable_events "
    "WHERE run_id = $1 AND seq > $2 ORDER BY seq"
)
ANYTHING_CLAIMABLE = (
    f"SELECT EXISTS (SELECT 1 FROM durable_runs WHERE status IN {_ACTIVE} "
    "AND (owner IS NULL OR lease_expires_at < $1) AND ready_at IS NOT NULL AND ready_at <= $1)"
)

# The run row and its first event in one statement; ON CONFLICT makes a repeated id a no-op.
_CREATE_RUN = f"""
WITH r AS (
    INSERT INTO durable_runs ({INSERT_RUN_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $7, NULL, $8, $9, $10, $11, $7)
    ON CONFLICT (run_id) DO NOTHING
    RETURNING 1
), e AS (
    INSERT INTO durable_events (run_id, seq, type, data, created_at, checksum)
    SELECT $1, $8, $12, $13, $14, $15 WHERE EXISTS (SELECT 1 FROM r)
    RETURNING 1
)
SELECT count(*) FROM r
"""
# The same with a history after the first event: all the events travel as arrays ($8 is the
# last one's seq). A separate text, so the plain create keeps its own prepared statement.
_CREATE_RUN_WITH_HISTORY = f"""
WITH r AS (
    INSERT INTO durable_runs ({INSERT_RUN_COLUMNS})
    VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $7, NULL, $8, $9, $10, $11, $7)
    ON CONFLICT (run_id) DO NOTHING
    RETURNING 1
), e AS (
    INSERT INTO durable_events (run_id, seq, type, data, created_at, checksum)
    SELECT $1, x.seq, x.type, x.data, x.created_at, x.checksum
    FROM unnest($12::int4[], $13::text[], $14::bytea[], $15::float8[], $16::int8[])
        AS x(seq, type, data, created_at, checksum)
    WHERE EXISTS (SELECT 1 FROM r)
    RETURNING 1
)
SELECT count(*) FROM r
"""

# A reopen: the row is locked first (FOR UPDATE, until the batch commits), so the checks made
# on it still hold when the update and the event insert (one statement) are applied. A prune
# running meanwhile skips the locked row, or deletes it first (then the reopen finds no run).
_REOPEN_STATE = "SELECT status, last_seq FROM durable_runs WHERE run_id = $1 FOR UPDATE"
_REOPEN = f"""
WITH u AS (
    UPDATE durable_runs SET status = 'pending', result = NULL, error = NULL,
        admitted_at = NULL, finished_at = NULL, owner = NULL, lease_expires_at = NULL,
        ready_at = $2, updated_at = $2, last_seq = $3
    WHERE run_id = $1
    RETURNING {RUN_COLUMNS}
), e AS (
    INSERT INTO durable_events (run_id, seq, type, data, created_at, checksum)
    SELECT $1, $3, $4, $5, $6, $7 FROM u
    RETURNING 1
)
SELECT * FROM u
"""

# The appends of one round (at most one per run) as one statement: the expected seq, the fence
# and the run update are one checked UPDATE over all of them, and only the events of the appends
# it matched are inserted. One round trip for a whole group commit's appends, and nothing
# written for a refused one. (A NULL fence owner = no fence.)
_APPEND_ROUND = """
WITH a AS (
    SELECT * FROM unnest(
        $1::text[], $2::int4[], $3::int4[], $4::float8[], $5::text[], $6::bytea[],
        $7::bytea[], $8::float8[], $9::bool[], $10::text[], $11::int4[]
    ) AS a(run_id, expected, new_seq, updated_at, status, result, error, finished_at, final,
           fence_owner, fence_epoch)
), u AS (
    UPDATE durable_runs AS r SET
        last_seq = a.new_seq,
        updated_at = COALESCE(a.updated_at, r.updated_at),
        status = COALESCE(a.status, r.status),
        result = COALESCE(a.result, r.result),
        error = COALESCE(a.error, r.error),
        finished_at = COALESCE(a.finished_at, r.finished_at),
        ready_at = CASE WHEN a.final THEN NULL ELSE r.ready_at END
    FROM a
    WHERE r.run_id = a.run_id AND r.last_seq = a.expected
        AND (a.fence_owner IS NULL OR (r.owner = a.fence_owner AND r.epoch = a.fence_epoch))
    RETURNING r.run_id
), e AS (
    INSERT INTO durable_events (run_id, seq, type, data, created_at, checksum)
    SELECT x.run_id, x.seq, x.type, x.data, x.created_at, x.checksum
    FROM unnest($12::text[], $13::int4[], $14::text[], $15::bytea[], $16::float8[], $17::int8[])
        AS x(run_id, seq, type, data, created_at, checksum)
    WHERE x.run_id IN (SELECT run_id FROM u)
    RETURNING 1
)
SELECT run_id FROM u
"""
_REFUSAL_STATE = (
    "SELECT run_id, last_seq, owner, epoch FROM durable_runs WHERE run_id = ANY($1::text[])"
)

# Candidates are locked with SKIP LOCKED: concurrent claimers (other workers) pass over each
# other's rows instead of queueing behind them, and no run is handed out twice.
_CLAIM = """
UPDATE durable_runs AS r SET owner = $1, epoch = r.epoch + 1, lease_expires_at = $2
FROM (
    SELECT run_id FROM durable_runs
    WHERE status IN {active} AND (owner IS NULL OR lease_expires_at < $3)
        AND ready_at IS NOT NULL AND ready_at <= $3 AND {admitted}
        AND run_id <> ALL($4::text[]){eligible}
    ORDER BY ready_at, created_at
    LIMIT $5
    FOR UPDATE SKIP LOCKED
) AS c
WHERE r.run_id = c.run_id
RETURNING {columns}
"""
_ELIGIBLE = (
    "\n        AND (workflow, version) IN "
    "(SELECT w, v FROM unnest($6::text[], $7::text[]) AS e(w, v))"
)
_RETURNING = ", ".join(f"r.{c}" for c in _COLUMNS)
CLAIM_ANY = _CLAIM.format(active=_ACTIVE, eligible="", columns=_RETURNING, admitted=ADMITTED)
CLAIM_ELIGIBLE = _CLAIM.format(
    active=_ACTIVE, eligible=_ELIGIBLE, columns=_RETURNING, admitted=ADMITTED
)

_RENEW = f"UPDATE durable_runs SET lease_expires_at = $1 WHERE owner = $2 AND status IN {_ACTIVE}"
_RENEW_LISTED = _RENEW + " AND run_id = ANY($3::text[])"
# A release: ready at its ready_at (NULL: created_at, i.e. now) or never if parked, but never
# later than the oldest item still in the inbox (LEAST ignores NULLs).
#
# The inbox is read by a subquery, with the statement's snapshot: under READ COMMITTED an item
# whose delivery commits after the UPDATE started is not seen, even if the UPDATE waited for that
# delivery's row lock (only the run row itself is re-read then). So the rows are locked first, by
# a statement of their own, FOR UPDATE: the one mode that conflicts with the KEY SHARE lock every
# delivery holds on its run until its commit (_DELIVER). A delivery in flight makes the lock wait
# for its commit, and the UPDATE, a later statement with a later snapshot, then sees its item. A
# delivery that comes after the lock waits for the release's commit, and then sees the released
# row (ready_at NULL or later than its item) and wakes it. In run_id order, so that two
# processes releasing the same runs lock them in one order.
_LOCK_RELEASED = (
    "SELECT 1 FROM durable_runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE"
)
_OLDEST_ITEM = (
    "(SELECT min(i.created_at) FROM durable_inbox AS i WHERE i.run_id = durable_runs.run_id)"
)
_RELEASE = (
    "UPDATE durable_runs SET owner = NULL, lease_expires_at = NULL, ready_at = CASE "
    f"WHEN status NOT IN {_ACTIVE} THEN NULL WHEN $5::bool THEN {_OLDEST_ITEM} "
    f"ELSE LEAST(COALESCE($1::float8, created_at), {_OLDEST_ITEM}) END "
    "WHERE run_id = $2 AND owner = $3 AND epoch = $4"
)

CHANGE_UPDATE_PG = numbered(CHANGE_UPDATE)

INBOX_COLUMNS = "id, run_id, kind, name, payload, created_at, dedupe_key"
SELECT_INBOX = (
    f"SELECT {INBOX_COLUMNS} FROM durable_inbox WHERE run_id = ANY($1::text[]) ORDER BY id"
)
# One item delivered: the run row is locked, the item inserted unless its dedupe key is already
# in the inbox (the partial unique index is the conflict target), and an unfinished run woken.
# With no run row nothing is written: `found` is 0.
#
# The lock, KEY SHARE until the batch commits, keeps a prune (FOR UPDATE SKIP LOCKED) from
# deleting the run meanwhile and a release (FOR UPDATE first, _LOCK_RELEASED) from reading the
# inbox before the item is committed; it does not block appends, claims or other deliveries. The
# wake-up is decided on the row r locked, the run's latest version: if a release committed after
# this statement's snapshot (r waited for it, or found the row updated, and followed it to its
# new version), the UPDATE's own scan still sees the version from before the release (ready_at
# in the past, no wake-up needed there), but r shows the parked row. The UPDATE then finds its
# version updated and applies itself to the latest one, rechecking d's status and taking the
# earlier of d's ready_at (another delivery may have woken it since) and the item's arrival.
_DELIVER = f"""
WITH r AS (
    SELECT run_id, status, ready_at FROM durable_runs WHERE run_id = $1 FOR KEY SHARE
), ins AS (
    INSERT INTO durable_inbox (run_id, kind, name, payload, created_at, dedupe_key)
    SELECT $1, $2, $3, $4, $5, $6 FROM r
    ON CONFLICT (run_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING id
), w AS (
    UPDATE durable_runs AS d SET ready_at = LEAST(d.ready_at, $5) FROM r
    WHERE d.run_id = r.run_id AND r.status IN {_ACTIVE} AND d.status IN {_ACTIVE}
        AND (r.ready_at IS NULL OR r.ready_at > $5)
    RETURNING 1
)
SELECT (SELECT count(*) FROM r) AS found, (SELECT id FROM ins) AS id
"""
_SELECT_INBOX_KEYED = (
    f"SELECT {INBOX_COLUMNS} FROM durable_inbox WHERE run_id = $1 AND dedupe_key = $2"
)
_CONSUME = "DELETE FROM durable_inbox WHERE run_id = $1 AND id = ANY($2::int8[])"

# Upsert the worker; forget the ones expired long ago (crashed workers never remove themselves).
HEARTBEAT_WORKER = """
WITH old AS (
    DELETE FROM durable_workers WHERE expires_at < $6 AND owner <> $1
)
INSERT INTO durable_workers (owner, capabilities, started_at, last_seen, expires_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (owner) DO UPDATE SET capabilities = EXCLUDED.capabilities,
    last_seen = EXCLUDED.last_seen, expires_at = EXCLUDED.expires_at
"""
LIST_WORKERS = (
    "SELECT owner, capabilities, started_at, last_seen, expires_at FROM durable_workers "
    "WHERE expires_at > $1 ORDER BY owner"
)
REMOVE_WORKER = "DELETE FROM durable_workers WHERE owner = $1"
NOTIFY = "SELECT pg_notify($1, '')"

DEFINITION_COLUMNS = "name, version, fingerprint, format, source, created_at"
# The primary key (name, version) is the conflict target: a stored definition is never replaced.
# A concurrent insert of the same key makes this one wait for its outcome, then do nothing.
INSERT_DEFINITION = (
    f"INSERT INTO durable_definitions ({DEFINITION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT (name, version) DO NOTHING RETURNING 1"
)
SELECT_DEFINITION = (
    f"SELECT {DEFINITION_COLUMNS} FROM durable_definitions WHERE name = $1 AND version = $2"
)
# Byte order ("C"), whatever the database's collation: the order of the other backends.
_DEFINITION_ORDER = ' ORDER BY name COLLATE "C", created_at, version COLLATE "C"'
LIST_DEFINITIONS = f"SELECT {DEFINITION_COLUMNS} FROM durable_definitions" + _DEFINITION_ORDER
LIST_DEFINITIONS_NAMED = (
    f"SELECT {DEFINITION_COLUMNS} FROM durable_definitions WHERE name = $1" + _DEFINITION_ORDER
)
COUNT_DEFINITIONS = "SELECT count(*) FROM durable_definitions"


def definition_args(record: DefinitionRecord) -> tuple[object, ...]:
    return (
        record.name,
        record.version,
        record.fingerprint,
        record.format,
        record.source,
        record.created_at,
    )


def row_to_definition(row: Sequence[Any]) -> DefinitionRecord:
    return DefinitionRecord(*row)  # column order matches the struct


def row_to_run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(*row)  # column order matches the struct


async def create_run(
    conn: Any, run: NewRun, first: EventRecord, history: Sequence[EventRecord] = ()
) -> tuple[RunRecord, bool]:
    if history:
        check_history(run, first, history)
    if run.queue is not None and not history:
        return await queues.create_queued(conn, run, first, SELECT_RUN, row_to_run)
    record = created_record(run, first, history)
    args: tuple[Any, ...] = (
        run.run_id,
        run.workflow,
        run.version,
        record.status,
        run.input,
        run.parent_run_id,
        run.created_at,
        record.last_seq,
        run.owner,
        record.epoch,
        run.lease_expires_at,
    )
    if history:
        chain = (first, *history)
        created = await conn.fetchval(
            _CREATE_RUN_WITH_HISTORY,
            *args,
            [e.seq for e in chain],
            [e.type for e in chain],
            [e.data for e in chain],
            [e.created_at for e in chain],
            [checksum_of(e) for e in chain],
        )
    else:
        created = await conn.fetchval(
            _CREATE_RUN, *args, first.type, first.data, first.created_at, checksum_of(first)
        )
    if not created:
        return row_to_run(await conn.fetchrow(SELECT_RUN, run.run_id)), False
    return record, True


async def reopen(
    conn: Any, run_id: str, event: EventRecord, statuses: Collection[str], now: float
) -> RunRecord:
    found = await conn.fetchrow(_REOPEN_STATE, run_id)
    check_reopen(run_id, event, None if found is None else (found[0], found[1]), statuses)
    await queues.check_reopen_key(conn, run_id)
    row = await conn.fetchrow(
        _REOPEN,
        run_id,
        now,
        event.seq,
        event.type,
        event.data,
        event.created_at,
        checksum_of(event),
    )
    return row_to_run(row)


async def append_many(conn: Any, apps: Sequence[Append]) -> list[Exception | None]:
    """Apply appends in the order given; each one's outcome (None: written). A refused one
    changes nothing. Appends to one run are applied one round apart, in order."""
    outcomes: list[Exception | None] = [None] * len(apps)
    pending: list[int] = []
    for i, app in enumerate(apps):
        try:
            check_append(app)
            pending.append(i)
        except InvalidAppendError as exc:
            outcomes[i] = exc
    while pending:
        this_round: list[int] = []
        later: list[int] = []
        seen: set[str] = set()
        for i in pending:
            # Once a run's append is deferred, all its later ones are too: order per run holds.
            (later if apps[i].run_id in seen else this_round).append(i)
            seen.add(apps[i].run_id)
        written = await _append_round(conn, [apps[i] for i in this_round])
        for i in this_round:
            app = apps[i]
            if app.run_id in written and (
                app.consume
                or app.send
                or app.completions
                or app.values
                or app.stream
                or app.updates
            ):
                # In the batch's transaction (the writer never sends such appends alone as one
                # statement): all or nothing with the events.
                await _consume_and_send(conn, app)
        refused = [i for i in this_round if apps[i].run_id not in written]
        if refused:
            # Read now, before a later round moves these runs on: the state that refused them.
            ids = [apps[i].run_id for i in refused]
            state = {r["run_id"]: r for r in await conn.fetch(_REFUSAL_STATE, ids)}
            for i in refused:
                outcomes[i] = _refusal(apps[i], state.get(apps[i].run_id))
        pending = later
    return outcomes


async def _append_round(conn: Any, apps: Sequence[Append]) -> set[str]:
    """One statement for appends to distinct runs; the ids of the runs it wrote."""
    cols: list[list[Any]] = [[] for _ in range(11)]
    evs: list[list[Any]] = [[] for _ in range(6)]
    for app in apps:
        events, upd, fence = app.events, app.update, app.fence
        status = upd.status if upd else None
        row: tuple[Any, ...] = (
            app.run_id,
            app.expected_last_seq,
            events[-1].seq if events else app.expected_last_seq,
            # An append without events only verifies and updates: updated_at stays.
            events[-1].created_at if events else None,
            status,
            upd.result if upd else None,
            upd.error if upd else None,
            upd.finished_at if upd else None,
            status in _FINAL,
            fence.owner if fence else None,
            fence.epoch if fence else None,
        )
        for col, value in zip(cols, row, strict=True):
            col.append(value)
        for e in events:
            fields: tuple[Any, ...] = (
                e.run_id,
                e.seq,
                e.type,
                e.data,
                e.created_at,
                checksum_of(e),
            )
            for col, value in zip(evs, fields, strict=True):
                col.append(value)
    rows = await conn.fetch(_APPEND_ROUND, *cols, *evs)
    return {r[0] for r in rows}


async def _consume_and_send(conn: Any, app: Append) -> None:
    if app.consume:
        await conn.execute(_CONSUME, app.run_id, list(app.consume))
    for item in app.send:
        await deliver(conn, item, strict=False)
    if app.completions:
        await conn.executemany(
            completions.PG_INSERT, [completions.insert_args(app.run_id, c) for c in app.completions]
        )
    await pg_upsert(conn, app)
    if app.stream:
        await streams_pg.project(conn, app.run_id, app.stream)
    if app.updates:
        await conn.executemany(
            CHANGE_UPDATE_PG, [change_params(app.run_id, c) for c in app.updates]
        )


async def send(conn: Any, item: NewInboxItem) -> InboxItem:
    sent = await deliver(conn, item, strict=True)
    assert sent is not None
    return sent


async def deliver(conn: Any, item: NewInboxItem, *, strict: bool) -> InboxItem | None:
    """Insert (or find, by dedupe key) an inbox item and wake its run. A missing run raises
    RunNotFoundError (having written nothing) if strict, else the item is skipped (None)."""
    while True:
        row = await conn.fetchrow(
            _DELIVER,
            item.run_id,
            item.kind,
            item.name,
            item.payload,
            item.created_at,
            item.dedupe_key,
        )
        if not row["found"]:
            if strict:
                raise RunNotFoundError(item.run_id)
            return None
        if row["id"] is not None:
            break
        # Already in the inbox under this dedupe key: that item, unless another process
        # consumed it since (then the key is free again, and this item goes in).
        existing = await conn.fetchrow(_SELECT_INBOX_KEYED, item.run_id, item.dedupe_key)
        if existing is not None:
            return row_to_item(existing)
    return item.stored(row["id"])


def row_to_item(row: Sequence[Any]) -> InboxItem:
    return InboxItem(*row)  # column order matches the struct


def heartbeat_args(
    owner: str, capabilities: str, now: float, ttl: float
) -> tuple[str, str, float, float, float, float]:
    return (owner, capabilities, now, now, now + ttl, now - FORGET_WORKERS_AFTER)


def _refusal(app: Append, row: Any) -> Exception:
    if row is None:
        return RunNotFoundError(app.run_id)
    last_seq, owner, epoch = row["last_seq"], row["owner"], row["epoch"]
    fence = app.fence
    if fence is not None and (owner != fence.owner or epoch != fence.epoch):
        return LeaseLostError(app.run_id, fence.owner, fence.epoch, owner, epoch)
    return SequenceConflictError(app.run_id, app.expected_last_seq, last_seq)


async def claim(
    conn: Any,
    owner: str,
    limit: int,
    lease_ttl: float,
    now: float,
    eligible: Sequence[tuple[str, str]] | None,
    exclude: Sequence[str],
) -> list[Claim]:
    if limit <= 0 or (eligible is not None and not eligible):
        return []
    args: list[Any] = [owner, now + lease_ttl, now, list(exclude), limit]
    if eligible is None:
        rows = await conn.fetch(CLAIM_ANY, *args)
    else:
        args += [[w for w, _ in eligible], [v for _, v in eligible]]
        rows = await conn.fetch(CLAIM_ELIGIBLE, *args)
    claims = [Claim(run=row_to_run(r), fence=Fence(owner, r["epoch"])) for r in rows]
    # Then the queues admit what they can into the slots left (storage._queue_pg).
    claims += await queues.admit(
        conn, owner, limit - len(claims), lease_ttl, now, eligible, RUN_COLUMNS, _ACTIVE, row_to_run
    )
    claims.sort(key=lambda c: (c.run.ready_at or 0.0, c.run.created_at, c.run.run_id))
    return claims


async def renew(
    conn: Any, owner: str, lease_ttl: float, now: float, run_ids: Sequence[str] | None
) -> int:
    if run_ids is None:
        status = await conn.execute(_RENEW, now + lease_ttl, owner)
    else:
        status = await conn.execute(_RENEW_LISTED, now + lease_ttl, owner, list(run_ids))
    return int(str(status).rsplit(" ", 1)[-1])  # "UPDATE <count>"


async def release(conn: Any, releases: Sequence[Release]) -> None:
    """Give the leases back, in the batch's transaction; the rows are locked first (see
    _LOCK_RELEASED), so that the inbox read sees every delivery that committed before. (The
    lock must last until the UPDATE's commit: outside a transaction, this opens one.)"""
    if not conn.is_in_transaction():
        async with conn.transaction():
            await release(conn, releases)
        return
    await conn.execute(_LOCK_RELEASED, [r.run_id for r in releases])
    await conn.executemany(
        _RELEASE, [(r.ready_at, r.run_id, r.fence.owner, r.fence.epoch, r.park) for r in releases]
    )
