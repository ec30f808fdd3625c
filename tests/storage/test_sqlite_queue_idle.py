"""SQLite: an idle poll stays a read while the only waiting runs are in queues that cannot
admit (full, or out of rate): no write lock, no commit per poll. Once a slot frees, the poll
writes and admits."""

from __future__ import annotations

from pathlib import Path

from storekit import T0
from test_conformance_queues import claim, finish, start
from test_sqlite_specific import opened

from storage import QueueRecord, SQLiteStore


async def test_an_idle_poll_on_a_full_queue_commits_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "q.db"))
    async with opened(store):
        await store.put_queue(QueueRecord("full", concurrency=1))
        await store.put_queue(QueueRecord("paced", rate_limit=1, rate_period=60.0))
        for i in range(3):
            await start(store, f"f{i}", "full", at=T0 + i)
            await start(store, f"p{i}", "paced", at=T0 + i)
        assert await claim(store, "w1") == ["f0", "p0"]
        commits, _ = store.commit_stats
        for poll in range(10):  # both queues at their limits: nothing to admit
            assert await claim(store, "w2", now=T0 + 11 + poll) == []
        assert store.commit_stats[0] == commits
        await finish(store, "f0")
        assert await claim(store, "w2", now=T0 + 30) == ["f1"]
        await finish(store, "f1")
        await finish(store, "p0")  # the rate window still holds its admission
        assert await claim(store, "w2", now=T0 + 69) == ["f2"]
        assert await claim(store, "w2", now=T0 + 71) == ["p1"]  # out of the window now
