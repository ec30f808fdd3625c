"""PostgreSQL's Store.cancel_waiting (storage._cancel_ops explains the rule).

SELECT ... FOR UPDATE with the condition in its WHERE: a worker admitting the run at that
instant holds the row's lock, so the select waits for its commit, re-reads the row and finds
it admitted (nothing is written); once this transaction holds the lock, an admission's UPDATE
waits for it and then finds the run cancelled (its WHERE re-checks status and admitted_at).
"""

from __future__ import annotations

from typing import Any

from storage._cancel_ops import STILL_WAITING, check_cancel_waiting
from storage._postgres_ops import append_many
from storage._records import Append

_LOCK_WAITING = "SELECT 1 FROM durable_runs WHERE " + STILL_WAITING.format(p="$1") + " FOR UPDATE"


async def cancel_waiting(conn: Any, app: Append) -> bool:
    check_cancel_waiting(app)
    if await conn.fetchval(_LOCK_WAITING, app.run_id) is None:
        return False
    (refused,) = await append_many(conn, [app])  # consume and send in this transaction too
    if refused is not None:
        raise refused  # cannot happen with the row locked as checked; never half-written
    return True
