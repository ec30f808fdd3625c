"""The memory store's queues: the same admission as storage._queue_ops, over dicts (the
reference the SQL backends are checked against in the conformance tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from storage._errors import DedupeKeyHeldError
from storage._queue_ops import QueuedRun, QueueRecord, QueueStats, RunQueue, free_slots
from storage._records import ACTIVE_STATUSES, NewRun, RunRecord


class Entry(msgspec.Struct):
    """A queued run's queue columns."""

    queue: str
    priority: int
    partition_key: str | None
    dedupe_key: str | None
    admitted_at: float | None = None


class MemoryQueues:
    def __init__(self) -> None:
        self.queues: dict[str, QueueRecord] = {}
        self.entries: dict[str, Entry] = {}

    def holder(self, run: NewRun, runs: Mapping[str, RunRecord]) -> str | None:
        """The live run holding run's dedupe key, if any."""
        if run.dedupe_key is None:
            return None
        for run_id, e in self.entries.items():
            live = runs.get(run_id)
            if (
                e.queue == run.queue
                and e.dedupe_key == run.dedupe_key
                and live is not None
                and live.status in ACTIVE_STATUSES
            ):
                return run_id
        return None

    def reopen(self, run_id: str, runs: Mapping[str, RunRecord]) -> None:
        """Put a reopened run back in its queue's waiting line; refused (DedupeKeyHeldError)
        while another unfinished run holds its dedupe key."""
        e = self.entries.get(run_id)
        if e is None:
            return
        if e.dedupe_key is not None:
            for other_id, o in self.entries.items():
                other = runs.get(other_id)
                if (
                    other_id != run_id
                    and o.queue == e.queue
                    and o.dedupe_key == e.dedupe_key
                    and other is not None
                    and other.status in ACTIVE_STATUSES
                ):
                    raise DedupeKeyHeldError(run_id, e.queue, e.dedupe_key, other_id)
        e.admitted_at = None

    def add(self, run: NewRun) -> None:
        assert run.queue is not None
        self.entries[run.run_id] = Entry(run.queue, run.priority, run.partition_key, run.dedupe_key)

    def next_generation(self, run_id: str) -> None:
        """A started debounced run gives its key up to the next burst (storage._debounce_ops)."""
        e = self.entries[run_id]
        e.dedupe_key = f"{e.dedupe_key}#{run_id}"

    def waiting(self, run_id: str) -> bool:
        e = self.entries.get(run_id)
        return e is not None and e.admitted_at is None

    def admit(
        self,
        runs: Mapping[str, RunRecord],
        owner: str,
        limit: int,
        now: float,
        eligible: set[tuple[str, str]] | None,
    ) -> list[str]:
        """The ids of the runs admitted now, within each queue's limits (marked admitted)."""
        chosen: list[str] = []
        by_queue: dict[str, list[str]] = {}
        for run_id, e in self.entries.items():
            r = runs.get(run_id)
            if (
                r is not None
                and e.admitted_at is None
                and r.status in ACTIVE_STATUSES
                and r.ready_at is not None
                and r.ready_at <= now
                and (eligible is None or (r.workflow, r.version) in eligible)
            ):
                by_queue.setdefault(e.queue, []).append(run_id)

        # Queues take turns by their oldest ready waiting run (name order would let a busy
        # queue early in the alphabet take every slot).
        def oldest(name: str) -> tuple[float, str]:
            return (min(runs[i].ready_at or 0.0 for i in by_queue[name]), name)

        for name in sorted(by_queue, key=oldest):
            queue = self.queues.get(name)
            if queue is None or len(chosen) >= limit:
                continue
            chosen += self._admit_one(queue, by_queue[name], runs, owner, limit - len(chosen), now)
        return chosen

    def _admit_one(
        self,
        queue: QueueRecord,
        waiting: Sequence[str],
        runs: Mapping[str, RunRecord],
        owner: str,
        wanted: int,
        now: float,
    ) -> list[str]:
        live = [
            (i, e)
            for i, e in self.entries.items()
            if e.queue == queue.name
            and e.admitted_at is not None
            and i in runs
            and runs[i].status in ACTIVE_STATUSES
        ]
        mine = sum(
            1
            for i, _ in live
            if runs[i].owner == owner and (runs[i].lease_expires_at or 0.0) >= now
        )
        window = now - (queue.rate_period or 0.0)
        recent = sum(
            1
            for e in self.entries.values()
            if e.queue == queue.name and e.admitted_at is not None and e.admitted_at > window
        )
        free = free_slots(queue, len(live), mine, recent, wanted)
        held: dict[str | None, int] = {}
        for _, e in live:
            held[e.partition_key] = held.get(e.partition_key, 0) + 1

        def order(i: str) -> tuple[int, float, float, str]:
            r = runs[i]
            return (-self.entries[i].priority, r.ready_at or 0.0, r.created_at, i)

        ranked: list[tuple[int, int, float, float, str]] = []
        rank: dict[str | None, int] = {}
        for i in sorted(waiting, key=order):
            part = self.entries[i].partition_key
            rank[part] = rank.get(part, 0) + 1
            limit = queue.partition_concurrency
            if limit is not None and part is not None and rank[part] + held.get(part, 0) > limit:
                continue
            p, ready, created, _ = order(i)
            # As the SQL backends: the partition's place in line counts its admitted runs.
            turn = rank[part] + (held.get(part, 0) if part is not None else 0)
            ranked.append((p, turn, ready, created, i))
        ids = [t[4] for t in sorted(ranked)[:free]]
        for i in ids:
            self.entries[i].admitted_at = now
        return ids

    def next_admission(self, runs: Mapping[str, RunRecord], now: float) -> float | None:
        """As storage._queue_ops.NEXT_ADMISSION."""
        times: list[float] = []
        waiting_now: set[str] = set()
        for i, e in self.entries.items():
            r = runs.get(i)
            if r is None or e.admitted_at is not None or r.status not in ACTIVE_STATUSES:
                continue
            if e.queue not in self.queues or r.ready_at is None:
                continue
            if r.ready_at > now:
                times.append(r.ready_at)
            else:
                waiting_now.add(e.queue)
        for name in waiting_now:
            queue = self.queues[name]
            if queue.rate_limit is None or queue.rate_period is None:
                continue
            window = now - queue.rate_period
            admitted = [
                e.admitted_at
                for e in self.entries.values()
                if e.queue == name and e.admitted_at is not None and e.admitted_at > window
            ]
            if admitted:
                times.append(min(admitted) + queue.rate_period)
        return min(times, default=None)

    def stats(self, name: str, runs: Mapping[str, RunRecord], now: float) -> QueueStats:
        queue = self.queues.get(name)
        window = now - (queue.rate_period or 0.0) if queue is not None else now
        waiting = running = recent = 0
        oldest: float | None = None
        for i, e in self.entries.items():
            r = runs.get(i)
            if e.queue != name or r is None:
                continue
            if e.admitted_at is not None and e.admitted_at > window:
                recent += 1
            if r.status not in ACTIVE_STATUSES:
                continue
            if e.admitted_at is None:
                waiting += 1
                oldest = r.created_at if oldest is None else min(oldest, r.created_at)
            else:
                running += 1
        return QueueStats(name, waiting, running, recent, oldest)

    def place(self, run_id: str, runs: Mapping[str, RunRecord]) -> RunQueue | None:
        e = self.entries.get(run_id)
        run = runs.get(run_id)
        if e is None or run is None:
            return None
        ahead = 0
        if e.admitted_at is None:
            mine = (run.ready_at or 0.0, run.created_at, run_id)
            for i, o in self.entries.items():
                r = runs.get(i)
                if (
                    r is None
                    or o.queue != e.queue
                    or o.admitted_at is not None
                    or r.status not in ACTIVE_STATUSES
                ):
                    continue
                if o.priority > e.priority or (
                    o.priority == e.priority and (r.ready_at or 0.0, r.created_at, i) < mine
                ):
                    ahead += 1
        return RunQueue(e.queue, e.priority, e.partition_key, e.dedupe_key, e.admitted_at, ahead)

    def runs(self, name: str, runs: Mapping[str, RunRecord], *, waiting: bool) -> list[QueuedRun]:
        """The queue's unfinished runs in storage._queue_ops.QUEUE_RUNS's order."""
        found = [
            QueuedRun(
                i,
                r.workflow,
                r.status,
                e.priority,
                e.partition_key,
                e.admitted_at,
                r.ready_at,
                r.created_at,
            )
            for i, e in self.entries.items()
            if e.queue == name
            and (r := runs.get(i)) is not None
            and r.status in ACTIVE_STATUSES
            and (e.admitted_at is None) == waiting
        ]
        return sorted(
            found,
            key=lambda q: (
                q.admitted_at or 0.0,
                -q.priority,
                q.ready_at or 0.0,
                q.created_at,
                q.run_id,
            ),
        )
