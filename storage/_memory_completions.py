"""External completions in the memory store (see storage._completions): the same rules as the
SQL backends, on a dict."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import msgspec

from storage._completions import CompletionRecord, Settled, check_status
from storage._records import FINAL_STATUSES, InboxItem, NewCompletion, NewInboxItem, RunRecord


class MemoryCompletions:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], CompletionRecord] = {}

    def insert(self, run_id: str, news: Sequence[NewCompletion]) -> None:
        for new in news:
            key = (run_id, new.pos)
            old = self.rows.get(key)
            # Another nonce at that position: a later history's wait replaces it (see INSERT).
            if old is None or old.nonce != new.nonce:
                self.rows[key] = CompletionRecord(
                    run_id, new.pos, new.name, new.nonce, "waiting", new.deadline,
                    new.created_at, None,
                )  # fmt: skip

    def settle(
        self,
        run: RunRecord | None,
        pos: int,
        nonce: str,
        status: str,
        now: float,
        item: NewInboxItem,
        deliver: Callable[[NewInboxItem], InboxItem | None],
    ) -> Settled:
        check_status(status)
        run_id = item.run_id
        row = self.rows.get((run_id, pos))
        won = (
            row is not None
            and run is not None
            and row.nonce == nonce
            and row.status == "waiting"
            and run.status not in FINAL_STATUSES
        )
        if won and row is not None:
            row = msgspec.structs.replace(row, status=status, settled_at=now)
            self.rows[(run_id, pos)] = row
            deliver(item)
        return Settled(won, row, None if run is None else run.status)

    def list(self, run_id: str) -> list[CompletionRecord]:
        return sorted(
            (r for (rid, _), r in self.rows.items() if rid == run_id), key=lambda r: r.pos
        )

    def forget(self, run_ids: Collection[str]) -> None:
        for key in [k for k in self.rows if k[0] in run_ids]:
            del self.rows[key]
