"""PostgreSQL's debounced start (storage._debounce_ops explains the rules).

Calls of one (queue, key) serialize on the advisory lock the dedupe start takes too (held to
commit), so the second call sees the first's run. Admission does not take that lock: the
rearm's UPDATE re-checks "still waiting" on the row itself. A worker admitting the run at that
instant holds the row's lock, so the UPDATE waits for its commit, then finds the run admitted
and changes nothing (the call begins a new burst); if the rearm commits first, the admission's
own UPDATE re-checks ready_at (storage._queue_pg._ADMIT) and leaves the pushed-back run waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from storage._debounce_ops import (
    HOLDER,
    NEXT_GENERATION,
    REARM,
    REWRITE_FIRST,
    check_debounced,
    rearmed_ready_at,
    rewritten,
)
from storage._queue_pg import create_queued, dedupe_lock
from storage._records import EventRecord, NewRun, RunRecord
from storage._sql_text import numbered

_HOLDER = numbered(HOLDER)
_REARM = numbered(REARM)
_REWRITE_FIRST = numbered(REWRITE_FIRST)
_NEXT_GENERATION = numbered(NEXT_GENERATION)


async def debounce_run(
    conn: Any,
    run: NewRun,
    first: EventRecord,
    max_wait: float | None,
    select_run: str,
    row_to_run: Callable[[Any], RunRecord],
) -> tuple[RunRecord, bool]:
    check_debounced(run, first, max_wait)
    assert run.queue is not None and run.dedupe_key is not None
    await conn.execute("SELECT pg_advisory_xact_lock($1)", dedupe_lock(run.queue, run.dedupe_key))
    found = await conn.fetchval(_HOLDER, run.queue, run.dedupe_key)
    if found is not None:
        holder = row_to_run(await conn.fetchrow(select_run, found))
        ready = rearmed_ready_at(run, holder.created_at, max_wait)
        status = await conn.execute(
            _REARM, run.input, run.version, ready, run.created_at, found, run.workflow
        )
        if str(status).endswith(" 1"):
            await conn.execute(_REWRITE_FIRST, *rewritten(found, first))
            return row_to_run(await conn.fetchrow(select_run, found)), False
        await conn.execute(_NEXT_GENERATION, found)  # started: a new burst
    # create_queued takes the same advisory lock again: re-entrant within a transaction.
    return await create_queued(conn, run, first, select_run, row_to_run)
