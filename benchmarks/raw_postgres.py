"""The PostgreSQL server's ceiling: asyncpg committing one row per transaction.

One connection sends one prepared INSERT at a time in autocommit mode: each is its own
transaction, one round trip, and one WAL flush at COMMIT (fsync=on, synchronous_commit=on).
That is the cheapest durable commit a client of this server can get without batching, so
(a)'s per-step cost on PostgreSQL compares against it. asyncpg because the engine's
PostgreSQL store uses it: the driver's overhead is part of both numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import time

# asyncpg has no type information; pyproject may or may not say so yet (the
# PostgreSQL branch adds an override), hence the unused-ignore as well.
import asyncpg  # type: ignore[import-untyped, unused-ignore]
import bench_common as bc

ROW = b"x" * 64  # roughly the size of a recorded step, as in raw_sqlite.py


async def measure(url: str, rows: int, warmup: int) -> tuple[float, dict[str, object]]:
    conn = await asyncpg.connect(url, timeout=30)
    try:
        await conn.execute("CREATE TABLE rows (id bigserial PRIMARY KEY, payload bytea NOT NULL)")
        insert = await conn.prepare("INSERT INTO rows (payload) VALUES ($1)")
        for _ in range(warmup):
            await insert.fetch(ROW)
        start = time.perf_counter()
        for _ in range(rows):
            await insert.fetch(ROW)
        elapsed = time.perf_counter() - start
        count = await conn.fetchval("SELECT count(*) FROM rows")
        if count != rows + warmup:
            raise RuntimeError(f"expected {rows + warmup} rows, found {count}")
        info: dict[str, object] = {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        }
    finally:
        await conn.close()
    return elapsed, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="postgresql:// URL of an empty database")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=50)
    ns = parser.parse_args()
    elapsed, info = asyncio.run(measure(ns.db, ns.rows, ns.warmup))
    bc.emit(
        {
            "kind": "raw",
            "rows": ns.rows,
            "seconds": elapsed,
            "rate": ns.rows / elapsed,
            "peak_rss_kib": bc.peak_rss_kib(),
            "info": info,
        }
    )


if __name__ == "__main__":
    main()
