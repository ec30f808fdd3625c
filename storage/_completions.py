"""External completions (durable_completions, schema version 7): one row per external wait a
run opened (ctx.wait_external), written by the append that records it, and settled exactly
once by whoever commits first: a completion, a failure, or the wait's own timeout.

Every outcome goes through one conditional transition (status 'waiting' -> completed /
failed / timed_out, for the right nonce, while the run has not ended). The winner, and only
the winner, inserts an inbox item for the run in the same transaction (so the worker holding
the run delivers it, or a parked run is woken); a loser changes nothing and learns the row's
status. Storage knows nothing of what the item carries.

The SQL is written once with SQLite's placeholders; PostgreSQL's copy is derived by numbered().
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from storage._records import FINAL_STATUSES, NewCompletion, NewInboxItem
from storage._sql_text import numbered

WAITING = "waiting"
SETTLED = ("completed", "failed", "timed_out")


class CompletionRecord(msgspec.Struct, frozen=True):
    run_id: str
    pos: int
    name: str
    nonce: str  # the secret part of the wait's token: never shown by read-only APIs
    status: str  # waiting, completed, failed, timed_out
    deadline: float | None
    created_at: float
    settled_at: float | None


class Settled(msgspec.Struct, frozen=True):
    """What settle_completion did: `won` (this call's transition committed, with its item),
    the row as it is now (None: no such wait), and the run's status (None: no such run)."""

    won: bool
    record: CompletionRecord | None
    run_status: str | None


class CompletionStore(Protocol):
    async def settle_completion(
        self, run_id: str, pos: int, nonce: str, *, status: str, now: float, item: NewInboxItem
    ) -> Settled:
        """Settle the waiting external wait (run_id, pos) whose nonce is `nonce` as `status`
        (completed, failed, timed_out), if its run has not ended, and send `item` to the run in
        the same transaction. Atomic between processes: of two settles, one wins."""
        ...

    async def list_completions(self, run_id: str) -> list[CompletionRecord]:
        """The run's external waits, by position."""
        ...


COLUMNS = "run_id, pos, name, nonce, status, deadline, created_at, settled_at"
_FINAL_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(FINAL_STATUSES)) + ")"

# A row with the same nonce is the same wait (an append written again): left alone. Another
# nonce at that position is a wait of a later history of the run (ctx.continue_as_new()
# reuses positions): it replaces the old one, whose history is over, so the old token is
# refused from then on.
INSERT = (
    "INSERT INTO durable_completions (run_id, pos, name, nonce, status, deadline, created_at) "
    "VALUES (?, ?, ?, ?, 'waiting', ?, ?) ON CONFLICT (run_id, pos) DO UPDATE SET "
    "name = excluded.name, nonce = excluded.nonce, status = 'waiting', "
    "deadline = excluded.deadline, created_at = excluded.created_at, settled_at = NULL "
    "WHERE durable_completions.nonce <> excluded.nonce"
)
SETTLE = (
    "UPDATE durable_completions SET status = ?, settled_at = ? "
    "WHERE run_id = ? AND pos = ? AND nonce = ? AND status = 'waiting' AND EXISTS ("
    "SELECT 1 FROM durable_runs AS r WHERE r.run_id = durable_completions.run_id "
    f"AND r.status NOT IN {_FINAL_SQL})"
)
SELECT = f"SELECT {COLUMNS} FROM durable_completions WHERE run_id = ? AND pos = ?"
LIST = f"SELECT {COLUMNS} FROM durable_completions WHERE run_id = ? ORDER BY pos"
RUN_STATUS = "SELECT status FROM durable_runs WHERE run_id = ?"

PG_INSERT = numbered(INSERT)
PG_SETTLE = numbered(SETTLE) + " RETURNING 1"
PG_SELECT = numbered(SELECT)
PG_LIST = numbered(LIST)
PG_RUN_STATUS = numbered(RUN_STATUS)


def check_status(status: str) -> None:
    if status not in SETTLED:
        raise ValueError(f"an external wait settles as one of {SETTLED}, not {status!r}")


def row_to_completion(row: Sequence[object]) -> CompletionRecord:
    return CompletionRecord(*row)  # type: ignore[arg-type]  # column order matches the struct


def insert_args(run_id: str, new: NewCompletion) -> tuple[object, ...]:
    return (run_id, new.pos, new.name, new.nonce, new.deadline, new.created_at)
