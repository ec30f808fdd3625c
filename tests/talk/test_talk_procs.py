"""Events and queries across processes: a `durable worker` subprocess executes the run, the
test's process (no worker) waits for its values and asks its queries, on a SQLite file and on
PostgreSQL. A SIGKILL of the worker right after a ValueSet commit: the value stays visible,
and the worker that takes the run over replays it without writing it again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from talkprocs import talk, until_phase, url_for, value_sets

from durable import QueryError

BACKENDS = ["sqlite", "postgres"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_values_and_queries_from_another_process(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with talk(tmp_path, url_for(backend, tmp_path, request)) as work:
        async with work.app() as app:
            handle = await app.start("talker", 41, run_id="t-1")
            waiting = asyncio.ensure_future(app.get_event("t-1", "total", timeout=60))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # no worker yet: nothing set
            work.spawn()
            assert await waiting == 42, work.log()
            assert await app.get_event("t-1", "phase", timeout=10) == "started"
            # Executing in the worker, held in a step: the replay here answers.
            await until_phase(app, "t-1", "holding")
            store = app.engine.client.store
            before = (await store.get_run("t-1")).last_seq  # type: ignore[union-attr]
            assert await app.query("t-1", "state") == {"total": 42, "phase": "holding"}
            assert await app.query("t-1", "plus", 8) == 50
            with pytest.raises(QueryError, match=r"called step 'add'"):
                await app.query("t-1", "step")
            assert (await store.get_run("t-1")).last_seq == before  # type: ignore[union-attr]
            work.release("note")
            assert await app.get_event("t-1", "phase", timeout=60) in ("started", "released")
            await until_phase(app, "t-1", "waiting")
            assert await app.get_event("t-1", "phase", timeout=10) == "released"
            await app.signal("t-1", "finish")
            assert await handle.result(timeout=60) == 42
            assert await app.query("t-1", "state") == {
                "total": 42,
                "phase": "done",
                "note": "note",
            }
            assert await app.list_events("t-1") == {"phase": "released", "total": 42}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_value_survives_sigkill_and_is_not_written_again(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with talk(tmp_path, url_for(backend, tmp_path, request), LEASE_TTL="1.5") as work:
        async with work.app() as app:
            await app.start("talker", 1, run_id="k-1")
            victim = work.spawn()
            # Committed: the reader in this process sees it (the row is in the ValueSet's commit).
            assert await app.get_event("k-1", "total", timeout=60) == 2, work.log()
            work.kill(victim)  # the run is held in its step, right after that commit
            store = app.engine.client.store
            row = await store.get_value("k-1", "total")
            assert row is not None
            assert await app.get_event("k-1", "total", timeout=0) == 2
            assert await value_sets(app, "k-1") == [(2, "phase"), (row.seq, "total")]
            work.spawn()  # takes the run over once the dead worker's lease expires
            work.release()
            await until_phase(app, "k-1", "waiting")
            await app.signal("k-1", "finish")
            assert await app.handle("k-1").result(timeout=60) == 2
            sets = await value_sets(app, "k-1")
            assert [key for _, key in sets] == ["phase", "total", "phase"]  # total: once
            assert (await store.get_value("k-1", "total")) == row  # same seq, same time
