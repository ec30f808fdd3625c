"""One worker process of the crash tests, run as a script: python crash_child.py '<config json>'.

It defines the workflows, starts the configured runs (start is idempotent on run_id, so a child
restarted on the same database just picks its runs up again), waits for every run it was told
about and prints their results as one JSON line on stdout.

Every step appends "run_id pos name pid time" to the side-effect file and fsyncs it before
returning: a line is proof that the step body ran in that process, even if the process was
killed before the step's StepCompleted became durable. The parent counts these lines.

The kill points live here, in test-only code, never in the engine:
- kill_after_seq: SIGKILL ourselves on the SQLite writer thread right after the COMMIT that makes
  event seq >= N durable, before the event loop even learns of it. That is an exact event
  (commit) boundary: nothing else of ours can be written after it.
- kill_in_step: SIGKILL ourselves inside the step at that position, after its side effect and
  before it returns, so the step is certainly "in flight" (ran, but recorded nowhere).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from typing import Any

import msgspec

from sdk import App, Context
from storage import Append, EventRecord, NewRun, RunRecord, SQLiteStore
from storage._sqlite_writer import SQLiteWriter

# Results of the chain workflow stay small ints whatever the seed.
MOD = 1_000_003


class RunSpec(msgspec.Struct, frozen=True):
    run_id: str
    workflow: str  # "five", "chain" or "looping"
    input: dict[str, int]


class ChildConfig(msgspec.Struct, frozen=True, kw_only=True):
    db: str  # absolute path of the SQLite file
    effects: str  # absolute path of the side-effect file
    start: list[RunSpec] = []
    wait: list[str] = []  # more run ids to wait for (started by another process)
    lease_ttl: float = 1.0
    poll_interval: float = 0.1
    max_concurrent_runs: int = 1000
    kill_after_seq: int | None = None
    kill_note: str | None = None  # file where the commit killer writes the durable last seq
    kill_in_step: int | None = None
    # Print {"ready": pid} once the app is open and wait for a line on stdin before starting
    # runs: lets the parent line several processes up.
    gate: bool = False
    step_scale: float = 1.0  # multiplies every step's sleep


def record_effect(
    cfg: ChildConfig, run_id: str, pos: int, name: str, before: float, after: float = 0.0
) -> None:
    """Sleep `before`, record the side effect, sleep `after`. The five workflow's steps sleep
    only before: their StepStarted commits alone well before the side effect, so boundary kills
    hit steps that have not run yet, and kill_in_step covers the other case deterministically.
    The chain's steps sleep on both sides, so a random kill often finds a step in flight."""
    time.sleep(before * cfg.step_scale)
    line = f"{run_id} {pos} {name} {os.getpid()} {time.time():.6f}\n".encode()
    # One O_APPEND write per line: lines of concurrent steps and processes never interleave.
    fd = os.open(cfg.effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if cfg.kill_in_step == pos:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(after * cfg.step_scale)


def build_app(cfg: ChildConfig) -> App:
    app = App(
        f"sqlite:///{cfg.db}",
        lease_ttl=cfg.lease_ttl,
        poll_interval=cfg.poll_interval,
        max_concurrent_runs=cfg.max_concurrent_runs,
    )

    # Every step takes (run_id, pos) first: the side-effect line needs them, and the parent
    # checks that the position the workflow passes is the one the engine recorded the step at.
    @app.step()
    def s1(run_id: str, pos: int, x: int) -> int:
        record_effect(cfg, run_id, pos, "s1", 0.10)
        return x * 3 + 1

    @app.step()
    def s2(run_id: str, pos: int, a: int) -> int:
        record_effect(cfg, run_id, pos, "s2", 0.10)
        return a + 10

    @app.step()
    def s3(run_id: str, pos: int, a: int) -> int:
        # Slower than s2, so the pair's two completions commit separately.
        record_effect(cfg, run_id, pos, "s3", 0.25)
        return a * a

    @app.step()
    def s4(run_id: str, pos: int, b: int, c: int) -> int:
        record_effect(cfg, run_id, pos, "s4", 0.10)
        return (b * c + 1) % MOD

    @app.step()
    def s5(run_id: str, pos: int, d: int, tag: str) -> int:
        record_effect(cfg, run_id, pos, "s5", 0.10)
        return d + len(tag)

    @app.workflow(name="five")
    async def five(ctx: Context, inp: dict[str, int]) -> dict[str, Any]:
        rid = ctx.run_id
        tag = ctx.uuid4()  # pos 0: must replay to the same value after every crash
        a = await s1(rid, 1, inp["x"])
        b, c = await asyncio.gather(s2(rid, 2, a), s3(rid, 3, a))  # the concurrent pair
        d = await s4(rid, 4, b, c)
        at = ctx.now()  # pos 5
        e = await s5(rid, 6, d, str(tag))
        return {"a": a, "b": b, "c": c, "d": d, "e": e, "tag": str(tag), "now": at.timestamp()}

    @app.step()
    def work(run_id: str, pos: int, x: int) -> int:
        delay = 0.015 + 0.01 * (pos % 3)
        record_effect(cfg, run_id, pos, "work", delay, delay)
        return (x * 7 + pos * 13) % 1009

    @app.workflow(name="chain")
    async def chain(ctx: Context, inp: dict[str, int]) -> dict[str, int]:
        """inp["n"] steps, mostly sequential, with a gather of three at positions 3, 13, 23..."""
        rid, total, n, pos = ctx.run_id, inp["seed"], inp["n"], 0
        while pos < n:
            if pos % 10 == 3 and pos + 3 <= n:
                vals = await asyncio.gather(*(work(rid, pos + j, total) for j in range(3)))
                total = (total + sum(vals)) % MOD
                pos += 3
            else:
                total = (total * 31 + await work(rid, pos, total)) % MOD
                pos += 1
        return {"total": total, "steps": pos}

    @app.workflow(name="looping")
    async def looping(ctx: Context, inp: dict[str, int]) -> dict[str, int]:
        """Two steps per history, continuing as new until generation inp["last"]: a step's
        effect line names it 100 * generation + i, unique across the run's histories."""
        rid, generation, total = ctx.run_id, inp["gen"], inp["total"]
        for i in range(2):
            total = (total * 31 + await work(rid, 100 * generation + i, total)) % MOD
        if generation < inp["last"]:
            ctx.continue_as_new({"gen": generation + 1, "total": total, "last": inp["last"]})
        return {"total": total, "generations": generation + 1}

    return app


def install_commit_killer(kill_seq: int, note: str | None) -> None:
    """SIGKILL this process right after the commit that makes event seq >= kill_seq durable."""
    watched: dict[asyncio.Future[Any], int] = {}  # a write's future -> the last seq it writes
    orig_append = SQLiteStore.append
    orig_create = SQLiteStore.create_run
    orig_apply = SQLiteWriter._apply

    def append(self: SQLiteStore, app: Append) -> asyncio.Future[None]:
        fut = orig_append(self, app)
        if app.events:
            watched[fut] = app.events[-1].seq
        return fut

    def create_run(
        self: SQLiteStore, run: NewRun, first: EventRecord
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        fut = orig_create(self, run, first)
        watched[fut] = first.seq
        return fut

    def apply(
        self: SQLiteWriter, conn: sqlite3.Connection, batch: Any, *, wait_for_lock: bool
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        # Right after COMMIT returned (on the writer thread, or inline on the loop thread for a
        # lone write) and before any future is resolved: nothing has acted on it yet.
        outcomes = orig_apply(self, conn, batch, wait_for_lock=wait_for_lock)
        durable = []
        for fut, ok, value in outcomes:
            seq = watched.pop(fut, None)
            # create_run of an existing run gives (row, False): it wrote nothing.
            wrote = not (isinstance(value, tuple) and value[1] is False)
            if seq is not None and ok and wrote:
                durable.append(seq)
        if durable and max(durable) >= kill_seq:
            if note is not None:
                with open(note, "w") as f:
                    f.write(str(max(durable)))
                    f.flush()
                    os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return outcomes

    SQLiteStore.append = append  # type: ignore[method-assign,assignment]
    SQLiteStore.create_run = create_run  # type: ignore[method-assign,assignment]
    SQLiteWriter._apply = apply  # type: ignore[method-assign]


async def amain(cfg: ChildConfig) -> None:
    app = build_app(cfg)
    if cfg.kill_after_seq is not None:
        install_commit_killer(cfg.kill_after_seq, cfg.kill_note)
    async with app:
        if cfg.gate:
            print(json.dumps({"ready": os.getpid()}), flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        for spec in cfg.start:
            await app.start(spec.workflow, spec.input, run_id=spec.run_id)
        results: dict[str, Any] = {}
        for run_id in [spec.run_id for spec in cfg.start] + cfg.wait:
            results[run_id] = await app.handle(run_id).result()
    print(json.dumps({"results": results}), flush=True)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s pid=%(process)d %(name)s %(levelname)s %(message)s",
    )
    cfg = msgspec.json.decode(sys.argv[1], type=ChildConfig)
    asyncio.run(amain(cfg))


if __name__ == "__main__":
    main()
