"""The chain of a run's histories (ctx.continue_as_new()), shared by SQLite and PostgreSQL.

A continued run keeps its id and its seq numbering; each history is a seq range starting at a
RunStarted. The chain (durable_histories: one row per generation) outlives the events of old
histories, which record_history deletes: the current history and `keep` before it keep
theirs. The chain is written by the worker that executes a history, after the continuation's
commit, and every write is idempotent (the next execution of the history writes it again),
so nothing correct depends on it: a fold of every retained event starts afresh at the last
RunStarted that continues the run (durable._state.fold). It only makes reads cheaper
(read_history starts at the current history) and shows the chain.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec


class HistoryMark(msgspec.Struct, frozen=True):
    """A history that began (`generation`, at `first_seq`) and the one it closed."""

    generation: int
    first_seq: int
    started_at: float
    previous_first_seq: int
    previous_last_seq: int  # the seq of the RunContinued that closed it
    previous_started_at: float
    keep: int = 1  # histories before the current one whose events are kept


class HistoryRecord(msgspec.Struct, frozen=True):
    generation: int
    first_seq: int
    last_seq: int | None  # None: the current history
    started_at: float
    ended_at: float | None
    retained: bool  # its events are still stored


def check_mark(mark: HistoryMark) -> None:
    if mark.generation < 1 or mark.keep < 0:
        raise ValueError(f"bad history mark {mark!r}: generation >= 1 and keep >= 0")
    if not mark.previous_first_seq <= mark.previous_last_seq < mark.first_seq:
        raise ValueError(f"bad history mark {mark!r}: seqs out of order")


# Written with ? placeholders; PostgreSQL's are derived (storage._sql_text.numbered).
CLOSE_PREVIOUS = (
    "INSERT INTO durable_histories (run_id, generation, first_seq, last_seq, started_at, "
    "ended_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, generation) "
    "DO UPDATE SET last_seq = excluded.last_seq, ended_at = excluded.ended_at"
)
OPEN_CURRENT = (
    "INSERT INTO durable_histories (run_id, generation, first_seq, last_seq, started_at, "
    "ended_at) VALUES (?, ?, ?, NULL, ?, NULL) ON CONFLICT (run_id, generation) DO NOTHING"
)
# Only when the chain holds the oldest kept history's start: a missing row deletes nothing.
TRIM = (
    "DELETE FROM durable_events WHERE run_id = ? AND seq < (SELECT first_seq "
    "FROM durable_histories WHERE run_id = ? AND generation = ?)"
)
SELECT_CHAIN = (
    "SELECT generation, first_seq, last_seq, started_at, ended_at FROM durable_histories "
    "WHERE run_id = ? ORDER BY generation"
)
OLDEST_EVENT = "SELECT min(seq) FROM durable_events WHERE run_id = ?"
SELECT_HISTORY = (
    "SELECT seq, type, data, created_at, checksum FROM durable_events "
    "WHERE run_id = ? AND seq >= COALESCE((SELECT max(first_seq) FROM durable_histories "
    "WHERE run_id = ?), 0) ORDER BY seq"
)
DELETE_CHAIN = "DELETE FROM durable_histories WHERE run_id IN (SELECT value FROM json_each(?))"


def mark_params(
    run_id: str, mark: HistoryMark
) -> tuple[tuple[object, ...], tuple[object, ...], tuple[object, ...] | None]:
    """The parameters of CLOSE_PREVIOUS, OPEN_CURRENT and TRIM (None: nothing to trim)."""
    close = (
        run_id,
        mark.generation - 1,
        mark.previous_first_seq,
        mark.previous_last_seq,
        mark.previous_started_at,
        mark.started_at,
    )
    open_ = (run_id, mark.generation, mark.first_seq, mark.started_at)
    oldest_kept = mark.generation - mark.keep
    trim = (run_id, run_id, oldest_kept) if oldest_kept > 0 else None
    return close, open_, trim


def chain(rows: Sequence[Sequence[Any]], oldest_event: int | None) -> list[HistoryRecord]:
    """The chain's rows as records; `oldest_event`: the run's oldest stored seq."""
    oldest = oldest_event if oldest_event is not None else 1 << 62
    return [
        HistoryRecord(
            generation=r[0],
            first_seq=r[1],
            last_seq=r[2],
            started_at=r[3],
            ended_at=r[4],
            retained=r[1] >= oldest,
        )
        for r in rows
    ]


def record_history(cur: sqlite3.Cursor, run_id: str, mark: HistoryMark) -> None:
    check_mark(mark)
    close, open_, trim = mark_params(run_id, mark)
    cur.execute(CLOSE_PREVIOUS, close)
    cur.execute(OPEN_CURRENT, open_)
    if trim is not None:
        cur.execute(TRIM, trim)
