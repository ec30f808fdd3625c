"""Lease bookkeeping inside one worker, and the durability a step body can rely on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from sdk import App, Context


async def test_a_lapsed_lease_on_a_run_still_executing_here_is_not_reclaimed(
    tmp_path: Path,
) -> None:
    """A late heartbeat lets the lease lapse; the claim loop must not take the run back from
    its own executor (that would fence the executor out and run the steps again)."""
    path = tmp_path / "l.db"
    app = App(f"sqlite:///{path}", poll_interval=0.05, lease_ttl=30.0)
    gate = asyncio.Event()
    runs = 0

    @app.step()
    async def long_step() -> str:
        nonlocal runs
        runs += 1
        await gate.wait()
        return "done"

    @app.workflow()
    async def wf(ctx: Context) -> str:
        return await long_step()

    async with app:
        await app.start(wf, run_id="r")
        while runs == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        with sqlite3.connect(path) as conn:  # as if the heartbeat were late
            conn.execute("UPDATE durable_runs SET lease_expires_at = 0 WHERE run_id = 'r'")
        await asyncio.sleep(0.3)  # several claim polls
        gate.set()
        assert await app.handle("r").result(timeout=10) == "done"
    with sqlite3.connect(path) as conn:
        (epoch,) = conn.execute("SELECT epoch FROM durable_runs WHERE run_id = 'r'").fetchone()
    assert epoch == 1
    assert runs == 1


async def test_heartbeat_renews_only_the_runs_executing_here(tmp_path: Path) -> None:
    """A run this worker owns but no longer executes (its release failed) must expire and be
    taken up again, not be kept leased forever by the heartbeat."""
    path = tmp_path / "l.db"
    setup = App(f"sqlite:///{path}", worker=False)

    @setup.workflow()
    async def wf(ctx: Context) -> str:
        return "finished"

    async with setup:
        await setup.start(wf, run_id="orphan")
    app = App(f"sqlite:///{path}", poll_interval=0.05, lease_ttl=0.6)
    app.workflow(wf)
    async with app:
        owner = app.engine.worker.owner if app.engine.worker else ""
        # Our own owner id and a live lease, but no executor: a release that never happened.
        # (Set after the first claim poll has run, so the worker doesn't simply execute it.)
        with sqlite3.connect(path) as conn:
            conn.execute(
                "UPDATE durable_runs SET owner = ?, epoch = 5, lease_expires_at = ? "
                "WHERE run_id = 'orphan'",
                (owner, time.time() + 0.6),
            )
        # Heartbeats (every 0.2 s) must not extend it; once it lapses it is claimed and run.
        assert await app.handle("orphan").result(timeout=10) == "finished"


async def test_heartbeats_move_the_executing_runs_lease_and_no_other(tmp_path: Path) -> None:
    """Watched in the database, heartbeat after heartbeat: the lease of the run executing here
    moves forward each time; that of a run held in this worker's name that nothing here
    executes (of a workflow this worker does not even have, so it never claims it) stays
    exactly where it was put."""
    path = tmp_path / "l.db"
    setup = App(f"sqlite:///{path}", worker=False)

    @setup.workflow(name="elsewhere")
    async def elsewhere(ctx: Context) -> str:
        return "not here"

    async with setup:
        await setup.start("elsewhere", run_id="stale")
    app = App(f"sqlite:///{path}", poll_interval=0.05, lease_ttl=1.2)  # a heartbeat per 0.4 s
    gate = asyncio.Event()
    running = asyncio.Event()

    @app.step()
    async def hold() -> str:
        running.set()
        await gate.wait()
        return "held"

    @app.workflow(name="live")
    async def live(ctx: Context) -> str:
        return await hold()

    async with app:
        await app.start("live", run_id="live")
        await asyncio.wait_for(running.wait(), 10)
        owner = app.engine.worker.owner if app.engine.worker else ""
        stale_until = time.time() + 60  # far enough that nobody may claim it meanwhile
        with sqlite3.connect(path) as conn:
            conn.execute(
                "UPDATE durable_runs SET owner = ?, epoch = 3, lease_expires_at = ? "
                "WHERE run_id = 'stale'",
                (owner, stale_until),
            )
        samples: list[tuple[float, dict[str, float]]] = []  # (when, lease of each run)
        for _ in range(9):  # 2.4 s: five heartbeats or more
            with sqlite3.connect(path) as conn:
                rows = conn.execute("SELECT run_id, lease_expires_at FROM durable_runs")
                samples.append((time.time(), dict(rows.fetchall())))
            await asyncio.sleep(0.3)
        gate.set()
        assert await app.handle("live").result(timeout=10) == "held"
    live_leases = [leases["live"] for _, leases in samples]
    assert len(set(live_leases)) >= 4, live_leases  # renewed again and again ...
    assert all(leases["live"] > when for when, leases in samples), samples  # ... never lapsed
    assert [leases["stale"] for _, leases in samples] == [stale_until] * len(samples)


async def test_a_ctx_value_is_durable_before_a_step_that_uses_it_starts(tmp_path: Path) -> None:
    """A step's effects may depend on a ctx value: if the value were not durable and the
    process died, the step would re-run with a different one. The body checks the log."""
    path = tmp_path / "l.db"
    app = App(f"sqlite:///{path}")
    seen: list[tuple[str, int]] = []

    @app.step()
    def use(token: str) -> str:
        with sqlite3.connect(path) as conn:  # another connection sees only committed data
            (markers,) = conn.execute(
                "SELECT count(*) FROM durable_events WHERE type = 'MarkerRecorded'"
            ).fetchone()
        seen.append((token, markers))
        return token

    @app.workflow()
    async def wf(ctx: Context) -> str:
        first = await use(str(ctx.uuid4()))
        second = await use(str(ctx.uuid4()))
        return first + second

    async with app:
        await app.run(wf)
    assert [count for _, count in seen] == [1, 2]


async def test_failing_writes_back_off_and_the_run_recovers(tmp_path: Path) -> None:
    """A write that fails for a reason other than a lost lease (here: the database going
    away, twice) stops the execution; the run is retried after 1 s, then 2 s, and finishes."""
    from storage import Append, DatabaseUnavailableError, Release

    app = App(f"sqlite:///{tmp_path / 'l.db'}", poll_interval=0.05)

    @app.step()
    async def one() -> int:
        return 1

    @app.workflow()
    async def wf(ctx: Context) -> int:
        return await one()

    async with app:
        store = app.engine.store
        real_append, real_release = store.append, store.release_leases
        # The database is away during the first two executions of the run: every append of
        # those executions fails (one execution may have several appends in flight).
        executions: list[object] = []  # the fences of run r's executions, in order
        delays: list[float] = []

        def flaky_append(append: Append) -> asyncio.Future[None]:
            if append.run_id == "r" and append.fence not in executions:
                executions.append(append.fence)
            if append.run_id == "r" and executions.index(append.fence) < 2:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                fut.set_exception(DatabaseUnavailableError("disk I/O error"))
                return fut
            return real_append(append)

        async def recording_release(releases: Sequence[Release]) -> None:
            delays.extend((r.ready_at or 0.0) - time.time() for r in releases)
            await real_release(releases)

        store.append = flaky_append  # type: ignore[method-assign]
        store.release_leases = recording_release  # type: ignore[method-assign]
        assert await app.handle((await app.start(wf, run_id="r")).run_id).result(timeout=20) == 1
    assert len(delays) == 2
    assert 0.8 < delays[0] <= 1.0 and 1.8 < delays[1] <= 2.0


async def test_a_full_worker_claims_the_next_run_as_soon_as_a_slot_frees(tmp_path: Path) -> None:
    """One slot, a 60 s poll, three runs already waiting: each run that finishes must wake the
    claim loop. A claim that took the last slot once left it asleep until the next poll."""
    path = tmp_path / "l.db"
    setup = App(f"sqlite:///{path}", worker=False)
    done: list[str] = []

    async def quick(ctx: Context, n: int) -> int:
        done.append(ctx.run_id)
        return n

    setup.workflow(name="quick")(quick)
    async with setup:
        for n in range(3):
            await setup.start("quick", n, run_id=f"q{n}")
    app = App(f"sqlite:///{path}", poll_interval=60.0, max_concurrent_runs=1)
    app.workflow(name="quick")(quick)
    async with app:
        results = [await app.handle(f"q{n}").result(timeout=20) for n in range(3)]
    assert results == [0, 1, 2]
    assert sorted(done) == ["q0", "q1", "q2"]
