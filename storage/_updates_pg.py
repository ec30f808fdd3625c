"""PostgreSQL's updates (storage._updates_ops explains the rule): the operations, run by the
writer in its transaction, and the store methods (a mixin of PostgresStore).

A request locks the run's row (SELECT ... FOR UPDATE) before it looks at the run's status and
inserts the request: the run's final append updates that row, so a request and a run's end are
serialized. A request that comes first is seen by the end's commit (its later statements read
after the lock wait); one that comes after finds the run ended and is refused."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

from storage import _postgres_ops as ops
from storage._errors import RunNotFoundError
from storage._records import EventRecord, NewRun
from storage._sql_text import numbered
from storage._update_records import NewUpdate, UpdateChange, UpdateRecord
from storage._updates_ops import UpdateRequested, refuse_finished, update_item
from storage._updates_sql import (
    CHANGE_UPDATE,
    INSERT_UPDATE,
    LIST_UPDATES,
    SELECT_UPDATE,
    change_params,
    row_to_update,
)

_SELECT_UPDATE = numbered(SELECT_UPDATE)
_LIST_UPDATES = numbered(LIST_UPDATES)
_INSERT_UPDATE = numbered(INSERT_UPDATE)
_CHANGE_UPDATE = numbered(CHANGE_UPDATE)
_LOCK_RUN = ops.SELECT_RUN + " FOR UPDATE"
_CONSUME_ONE = "DELETE FROM durable_inbox WHERE run_id = $1 AND id = $2"


async def request_update(
    conn: Any, req: NewUpdate, start: tuple[NewRun, EventRecord] | None = None
) -> UpdateRequested:
    run_created = False
    if start is not None:
        created_run, run_created = await ops.create_run(conn, start[0], start[1])
        if created_run.workflow != start[0].workflow:
            return UpdateRequested(None, False, created_run)
    row = await conn.fetchrow(_LOCK_RUN, req.run_id)
    if row is None:
        raise RunNotFoundError(req.run_id)
    run = ops.row_to_run(row)
    existing = await conn.fetchrow(_SELECT_UPDATE, req.run_id, req.update_id)
    if existing is not None:
        return UpdateRequested(row_to_update(existing), False, run, run_created)
    refuse_finished(run)
    await conn.execute(
        _INSERT_UPDATE,
        req.run_id,
        req.update_id,
        req.name,
        req.payload,
        req.created_at,
        req.created_at,
    )
    await ops.deliver(conn, update_item(req), strict=True)
    inserted = await conn.fetchrow(_SELECT_UPDATE, req.run_id, req.update_id)
    return UpdateRequested(row_to_update(inserted), True, run, run_created)


async def reject_update(conn: Any, run_id: str, change: UpdateChange, item_id: int) -> None:
    await conn.execute(_CHANGE_UPDATE, *change_params(run_id, change))
    await conn.execute(_CONSUME_ONE, run_id, item_id)


class PostgresUpdates:
    """Store.request_update and friends for PostgresStore (its writer and pool)."""

    def _w(self) -> Any:
        raise NotImplementedError  # PostgresStore's

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        raise NotImplementedError  # PostgresStore's

    def request_update(
        self, req: NewUpdate, start: tuple[NewRun, EventRecord] | None = None
    ) -> asyncio.Future[UpdateRequested]:
        # Its commit wakes idle workers (the run is ready now; a new one is claimable).
        op = functools.partial(request_update, req=req, start=start)
        fut: asyncio.Future[UpdateRequested] = self._w().submit(op, notify=True)
        return fut

    async def reject_update(self, run_id: str, change: UpdateChange, item_id: int) -> None:
        op = functools.partial(reject_update, run_id=run_id, change=change, item_id=item_id)
        await self._w().submit(op)

    async def get_update(self, run_id: str, update_id: str) -> UpdateRecord | None:
        rows = await self._fetch(_SELECT_UPDATE, run_id, update_id)
        return row_to_update(rows[0]) if rows else None

    async def list_updates(self, run_id: str, *, limit: int = 100) -> Sequence[UpdateRecord]:
        rows = await self._fetch(_LIST_UPDATES, run_id, limit)
        return [row_to_update(r) for r in rows]
