"""PostgreSQL's side of the history chain (storage._history_ops says what it is)."""

from __future__ import annotations

import functools
from typing import Any

from storage._checksum import verified
from storage._history_ops import (
    CLOSE_PREVIOUS,
    OLDEST_EVENT,
    OPEN_CURRENT,
    SELECT_CHAIN,
    SELECT_HISTORY,
    TRIM,
    HistoryMark,
    HistoryRecord,
    chain,
    check_mark,
    mark_params,
)
from storage._records import EventRecord
from storage._sql_text import numbered

_CLOSE_PREVIOUS = numbered(CLOSE_PREVIOUS)
_OPEN_CURRENT = numbered(OPEN_CURRENT)
_TRIM = numbered(TRIM)
SELECT_CHAIN_PG = numbered(SELECT_CHAIN)
OLDEST_EVENT_PG = numbered(OLDEST_EVENT)
SELECT_HISTORY_PG = numbered(SELECT_HISTORY)
DELETE_CHAIN_PG = "DELETE FROM durable_histories WHERE run_id = ANY($1::text[])"


async def record_history(conn: Any, run_id: str, mark: HistoryMark) -> None:
    check_mark(mark)
    close, open_, trim = mark_params(run_id, mark)
    await conn.execute(_CLOSE_PREVIOUS, *close)
    await conn.execute(_OPEN_CURRENT, *open_)
    if trim is not None:
        await conn.execute(_TRIM, *trim)


class PostgresHistories:
    """PostgresStore's history-chain methods, as a base class (keeps _postgres.py small); the
    two stubs below are PostgresStore's own methods."""

    _url: str

    def _w(self) -> Any:
        raise NotImplementedError

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        raise NotImplementedError

    async def record_history(self, run_id: str, mark: HistoryMark) -> None:
        await self._w().submit(functools.partial(record_history, run_id=run_id, mark=mark))

    async def read_history(self, run_id: str) -> list[EventRecord]:
        return verified(run_id, await self._fetch(SELECT_HISTORY_PG, run_id, run_id), self._url)

    async def list_histories(self, run_id: str) -> list[HistoryRecord]:
        rows = await self._fetch(SELECT_CHAIN_PG, run_id)
        oldest = await self._fetch(OLDEST_EVENT_PG, run_id)
        return chain(rows, oldest[0][0] if oldest else None)
