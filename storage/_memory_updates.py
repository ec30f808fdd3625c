"""The memory store's updates (storage._updates_ops explains the rule): a mixin of MemoryStore,
over its runs and inbox, with the same outcomes as the SQL backends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from storage._errors import RunNotFoundError
from storage._records import EventRecord, InboxItem, NewInboxItem, NewRun, RunRecord
from storage._update_records import NewUpdate, UpdateChange, UpdateRecord
from storage._updates_ops import UpdateRequested, refuse_finished, update_item


class MemoryUpdates:
    _runs: dict[str, RunRecord]
    _inbox: dict[int, InboxItem]
    _updates: dict[tuple[str, str], UpdateRecord]  # by (run id, update id)

    def _check_open(self) -> None:
        raise NotImplementedError  # MemoryStore's

    def create_run(
        self, run: NewRun, first_event: EventRecord, history: Sequence[EventRecord] = ()
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        raise NotImplementedError  # MemoryStore's

    def _deliver(self, new: NewInboxItem, *, strict: bool) -> InboxItem | None:
        raise NotImplementedError  # MemoryStore's

    def request_update(
        self, req: NewUpdate, start: tuple[NewRun, EventRecord] | None = None
    ) -> asyncio.Future[UpdateRequested]:
        fut: asyncio.Future[UpdateRequested] = asyncio.get_running_loop().create_future()
        try:
            fut.set_result(self._request(req, start))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def _request(self, req: NewUpdate, start: tuple[NewRun, EventRecord] | None) -> UpdateRequested:
        self._check_open()
        run_created = False
        if start is not None:
            run, run_created = self.create_run(start[0], start[1]).result()
            if run.workflow != start[0].workflow:
                return UpdateRequested(None, False, run)
        found = self._runs.get(req.run_id)
        if found is None:
            raise RunNotFoundError(req.run_id)
        run = found
        existing = self._updates.get((req.run_id, req.update_id))
        if existing is not None:
            return UpdateRequested(existing, False, run, run_created)
        refuse_finished(run)
        record = UpdateRecord(
            req.run_id,
            req.update_id,
            req.name,
            "requested",
            req.payload,
            None,
            None,
            req.created_at,
            req.created_at,
        )
        self._updates[(req.run_id, req.update_id)] = record
        self._deliver(update_item(req), strict=True)
        return UpdateRequested(record, True, self._runs[req.run_id], run_created)

    def apply_update_changes(self, run_id: str, changes: Sequence[UpdateChange]) -> None:
        for change in changes:
            row = self._updates.get((run_id, change.update_id))
            if row is None or row.done:
                continue
            self._updates[(run_id, change.update_id)] = msgspec.structs.replace(
                row,
                status=change.status,
                result=change.result if change.result is not None else row.result,
                error=change.error if change.error is not None else row.error,
                updated_at=change.at,
            )

    async def reject_update(self, run_id: str, change: UpdateChange, item_id: int) -> None:
        self._check_open()
        self.apply_update_changes(run_id, (change,))
        found = self._inbox.get(item_id)
        if found is not None and found.run_id == run_id:
            del self._inbox[item_id]

    async def get_update(self, run_id: str, update_id: str) -> UpdateRecord | None:
        self._check_open()
        return self._updates.get((run_id, update_id))

    async def list_updates(self, run_id: str, *, limit: int = 100) -> Sequence[UpdateRecord]:
        self._check_open()
        rows = [r for (rid, _), r in self._updates.items() if rid == run_id]
        return sorted(rows, key=lambda r: (r.created_at, r.update_id))[:limit]

    def _forget_updates(self, gone: set[str]) -> None:
        for key in [k for k in self._updates if k[0] in gone]:
            del self._updates[key]
