"""The updates part of the store protocol (storage._updates_ops explains the rule)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from storage._records import EventRecord, NewRun
from storage._update_records import NewUpdate, UpdateChange, UpdateRecord
from storage._updates_ops import UpdateRequested


class UpdateStore(Protocol):
    def request_update(
        self, req: NewUpdate, start: tuple[NewRun, EventRecord] | None = None
    ) -> asyncio.Future[UpdateRequested]:
        """In one transaction: with `start` (the run to create and its first event), create
        the run unless a run has that id (then its row is returned, and if it is of another
        workflow nothing else is done: `update` None); then, if no update of the run has
        req.update_id, insert its row (requested) and the inbox item that carries it (kind
        "update", name the update id), waking the run as send() does; else return the
        existing row and send nothing. A missing run is RunNotFoundError, an ended one
        RunStatusError (unless the row exists: it is returned)."""
        ...

    async def reject_update(self, run_id: str, change: UpdateChange, item_id: int) -> None:
        """In one transaction: apply `change` (status rejected) to the update's row if it is
        still open, and consume the run's inbox item `item_id`."""
        ...

    async def get_update(self, run_id: str, update_id: str) -> UpdateRecord | None: ...

    async def list_updates(self, run_id: str, *, limit: int = 100) -> Sequence[UpdateRecord]:
        """The run's updates, oldest first."""
        ...
