"""Rows of the updates table (version 7): the request row that makes an update sent to a run
exactly-once, and the changes an append makes to those rows in its own transaction."""

from __future__ import annotations

import msgspec

# requested: in the run's inbox, not taken yet. accepted: its UpdateAccepted is in the log.
# completed / failed: the handler returned / raised (UpdateCompleted). rejected: never entered
# the log (its validator raised, no handler, the run ended first).
UPDATE_STATUSES = ("requested", "accepted", "completed", "failed", "rejected")
OPEN_UPDATE_STATUSES = ("requested", "accepted")


class NewUpdate(msgspec.Struct, frozen=True):
    """An update to request: its row, and the inbox item that carries it to the run."""

    run_id: str
    update_id: str
    name: str
    payload: bytes  # the arguments, msgpack
    created_at: float


class UpdateRecord(msgspec.Struct, frozen=True):
    run_id: str
    update_id: str
    name: str
    status: str
    payload: bytes
    result: bytes | None
    error: bytes | None
    created_at: float
    updated_at: float

    @property
    def done(self) -> bool:
        return self.status not in OPEN_UPDATE_STATUSES


class UpdateChange(msgspec.Struct, frozen=True):
    """A status change of one update row of the append's run, in the append's transaction.
    It applies only while the row is still open (requested or accepted): a change never
    overwrites an outcome, so a replayed or repeated change is a no-op."""

    update_id: str
    status: str
    result: bytes | None = None
    error: bytes | None = None
    at: float = 0.0
