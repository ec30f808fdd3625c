"""External completions on SQLite (see storage._completions): the writer's ops."""

from __future__ import annotations

import sqlite3

from storage._completions import (
    RUN_STATUS,
    SELECT,
    SETTLE,
    Settled,
    check_status,
    row_to_completion,
)
from storage._records import NewInboxItem
from storage._sqlite_ops import deliver


def settle(
    cur: sqlite3.Cursor,
    *,
    run_id: str,
    pos: int,
    nonce: str,
    status: str,
    now: float,
    item: NewInboxItem,
) -> Settled:
    check_status(status)
    cur.execute(SETTLE, (status, now, run_id, pos, nonce))
    won = cur.rowcount == 1
    if won:
        deliver(cur, item, strict=True)  # the inbox's one insert path: wakes the run
    row = cur.execute(SELECT, (run_id, pos)).fetchone()
    run = cur.execute(RUN_STATUS, (run_id,)).fetchone()
    return Settled(
        won, None if row is None else row_to_completion(row), None if run is None else run[0]
    )
