"""Park and wake on the PostgreSQL store: the hot path of signals and parking, at the store's API.

    python benchmarks/park_wake.py                    # median of 3, 200 cycles, 100 runs x 20
    python benchmarks/park_wake.py --quick            # one repetition, smaller sizes
    python benchmarks/park_wake.py --pg-url postgresql://user@host/db   # an existing server

One cycle of a run that waits for signals: its worker appends an event consuming the signal it
handled (Append.consume) and releases the run parked (Release(park=True)); a signal is sent to it
(Store.send: the inbox insert and the wake-up); the worker claims it back (Store.claim_runs).
Sequential: one run, one cycle after another, each write awaited (a commit each). Concurrent:
--runs runs cycling together, each step gathered over all of them (the writer's group commit
shares the commits). Each repetition runs on a fresh database of one server (a throwaway one
started for the run, fsync and synchronous_commit on, unless --pg-url or $DURABLE_BENCH_PG_URL
names one whose user has CREATEDB). Measure a branch's store by putting its tree first on
PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time

import pg_server

from storage import (
    Append,
    EventRecord,
    Fence,
    NewInboxItem,
    NewRun,
    PostgresStore,
    Release,
)

OWNER = "bench"
TTL = 60.0


class Looper:
    """Runs leased by OWNER, each with its last seq, fence and the signal it is to consume."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.fence: dict[str, Fence] = {}
        self.seq: dict[str, int] = {}
        self.item: dict[str, int] = {}

    async def create(self, run_id: str) -> None:
        now = time.time()
        run = NewRun(run_id, "wf", "1", b"\xc0", now, owner=OWNER, lease_expires_at=now + TTL)
        record, _ = await self.store.create_run(run, EventRecord(run_id, 1, "S", b"\x80", now))
        self.fence[run_id] = Fence(OWNER, record.epoch)
        self.seq[run_id] = record.last_seq
        sent = await self.store.send(NewInboxItem(run_id, "signal", "go", b"\xc0", now))
        self.item[run_id] = sent.id

    async def park(self, run_id: str) -> None:
        """Handle (consume) the signal, then park."""
        seq = self.seq[run_id] + 1
        event = EventRecord(run_id, seq, "SignalReceived", b"\x80", time.time())
        consume = (self.item[run_id],)
        fence = self.fence[run_id]
        await self.store.append(Append(run_id, (event,), seq - 1, fence, consume=consume))
        self.seq[run_id] = seq
        await self.store.release_leases([Release(run_id, fence, park=True)])

    async def signal(self, run_id: str) -> None:
        sent = await self.store.send(NewInboxItem(run_id, "signal", "go", b"\xc0", time.time()))
        self.item[run_id] = sent.id

    async def claim(self, count: int) -> None:
        """Claim back `count` runs (all those just signalled)."""
        while count:
            claims = await self.store.claim_runs(OWNER, limit=count, lease_ttl=TTL, now=time.time())
            for claim in claims:
                self.fence[claim.run.run_id] = claim.fence
            count -= len(claims)


async def sequential(url: str, cycles: int) -> float:
    """Cycles per second of one run."""
    store = PostgresStore.from_url(url)
    await store.open()
    try:
        looper = Looper(store)
        await looper.create("r")
        started = time.perf_counter()
        for _ in range(cycles):
            await looper.park("r")
            await looper.signal("r")
            await looper.claim(1)
        return cycles / (time.perf_counter() - started)
    finally:
        await store.close()


async def concurrent(url: str, runs: int, cycles: int) -> float:
    """Cycles per second (over all runs) of `runs` runs cycling together."""
    store = PostgresStore.from_url(url)
    await store.open()
    try:
        looper = Looper(store)
        ids = [f"r{i}" for i in range(runs)]
        await asyncio.gather(*(looper.create(r) for r in ids))
        started = time.perf_counter()
        for _ in range(cycles):
            await asyncio.gather(*(looper.park(r) for r in ids))
            await asyncio.gather(*(looper.signal(r) for r in ids))
            await looper.claim(runs)
        return runs * cycles / (time.perf_counter() - started)
    finally:
        await store.close()


async def measure(admin: str, args: argparse.Namespace) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"sequential": [], "concurrent": []}
    for _ in range(args.repeats):
        for name in results:
            db = f"bench_park_{secrets.token_hex(4)}"
            await pg_server.create_database(admin, db)
            url = pg_server.with_database(admin, db)
            if name == "sequential":
                results[name].append(await sequential(url, args.cycles))
            else:
                results[name].append(await concurrent(url, args.runs, args.rounds))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=200, help="sequential cycles")
    parser.add_argument("--runs", type=int, default=100, help="concurrent runs")
    parser.add_argument("--rounds", type=int, default=20, help="cycles of each concurrent run")
    parser.add_argument("--pg-url", default=None, help=f"default: ${pg_server.URL_ENV}")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.cycles, args.runs, args.rounds = 1, 50, 50, 5
    given = args.pg_url or os.environ.get(pg_server.URL_ENV) or None
    with pg_server.admin_url(given) as admin:
        results = asyncio.run(measure(admin, args))
    for name, values in results.items():
        what = f"1 run x {args.cycles}" if name == "sequential" else f"{args.runs} x {args.rounds}"
        runs = " ".join(f"{v:,.0f}" for v in values)
        print(f"{name:<11} ({what:>10}): {statistics.median(values):>8,.0f} cycles/s  runs: {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
