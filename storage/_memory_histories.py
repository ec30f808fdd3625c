"""MemoryStore's history chain (storage._history_ops says what it is and why)."""

from __future__ import annotations

from storage._checksum import verified
from storage._history_ops import HistoryMark, HistoryRecord, check_mark
from storage._records import EventRecord


class MemoryHistories:
    """MemoryStore's history-chain methods, as a base class (keeps _memory.py small)."""

    _url: str
    _events: dict[str, list[tuple[EventRecord, int]]]
    # run id -> generation -> [first_seq, last_seq, started_at, ended_at]
    _chains: dict[str, dict[int, list[float | None]]]

    def _check_open(self) -> None:
        raise NotImplementedError

    async def record_history(self, run_id: str, mark: HistoryMark) -> None:
        self._check_open()
        check_mark(mark)
        chain = self._chains.setdefault(run_id, {})
        previous = chain.setdefault(
            mark.generation - 1,
            [mark.previous_first_seq, None, mark.previous_started_at, None],
        )
        previous[1], previous[3] = mark.previous_last_seq, mark.started_at
        chain.setdefault(mark.generation, [mark.first_seq, None, mark.started_at, None])
        kept = chain.get(mark.generation - mark.keep)
        if mark.generation - mark.keep > 0 and kept is not None and run_id in self._events:
            start = kept[0]
            assert start is not None
            self._events[run_id] = [(e, c) for e, c in self._events[run_id] if e.seq >= start]

    async def read_history(self, run_id: str) -> list[EventRecord]:
        self._check_open()
        chain = self._chains.get(run_id, {})
        start = max((int(row[0] or 0) for row in chain.values()), default=0)
        rows = (
            (e.seq, e.type, e.data, e.created_at, checksum)
            for e, checksum in self._events.get(run_id, ())
            if e.seq >= start
        )
        return verified(run_id, rows, self._url)

    async def list_histories(self, run_id: str) -> list[HistoryRecord]:
        self._check_open()
        events = self._events.get(run_id, [])
        oldest = events[0][0].seq if events else 1 << 62
        return [
            HistoryRecord(
                generation=generation,
                first_seq=int(first or 0),
                last_seq=None if last is None else int(last),
                started_at=float(started or 0.0),
                ended_at=ended,
                retained=int(first or 0) >= oldest,
            )
            for generation, (first, last, started, ended) in sorted(
                self._chains.get(run_id, {}).items()
            )
        ]
