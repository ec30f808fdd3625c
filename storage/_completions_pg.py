"""External completions on PostgreSQL (see storage._completions): the writer's op."""

from __future__ import annotations

from typing import Any

from storage._completions import (
    PG_RUN_STATUS,
    PG_SELECT,
    PG_SETTLE,
    Settled,
    check_status,
    row_to_completion,
)
from storage._postgres_ops import deliver
from storage._records import NewInboxItem


async def settle(
    conn: Any, *, run_id: str, pos: int, nonce: str, status: str, now: float, item: NewInboxItem
) -> Settled:
    """In the writer's transaction. Two processes settling at once: the second UPDATE waits
    for the first's row lock, then finds the row no longer waiting (READ COMMITTED re-checks
    the WHERE on the updated row) and changes nothing."""
    check_status(status)
    won = await conn.fetchval(PG_SETTLE, status, now, run_id, pos, nonce) is not None
    if won:
        await deliver(conn, item, strict=True)  # the inbox's one insert path: wakes the run
    row = await conn.fetchrow(PG_SELECT, run_id, pos)
    run = await conn.fetchval(PG_RUN_STATUS, run_id)
    return Settled(won, None if row is None else row_to_completion(tuple(row)), run)
