"""The disk's ceiling: stdlib sqlite3 committing one row per transaction.

WAL with synchronous=FULL makes every COMMIT an fsync of the WAL, which is the
least a durable engine must pay per step unless it batches commits; (a)'s target
is stated against this rate, measured on the same disk in the same run.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

import bench_common as bc

# Roughly the size of a recorded step (ids, a small serialized result, timestamps).
ROW = b"x" * 64


def measure(db: Path, rows: int, warmup: int) -> tuple[float, str, int]:
    # isolation_level=None: the module must not open transactions of its own, so
    # the BEGIN IMMEDIATE / COMMIT below are exactly what reaches SQLite.
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        conn.execute("PRAGMA synchronous=FULL")
        sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")

        def commit_rows(count: int) -> None:
            for _ in range(count):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO rows (payload) VALUES (?)", (ROW,))
                conn.execute("COMMIT")

        commit_rows(warmup)
        start = time.perf_counter()
        commit_rows(rows)
        elapsed = time.perf_counter() - start
        (count,) = conn.execute("SELECT count(*) FROM rows").fetchone()
        if count != rows + warmup:
            raise RuntimeError(f"expected {rows + warmup} rows, found {count}")
    finally:
        conn.close()
    return elapsed, mode, sync


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=50)
    ns = parser.parse_args()
    elapsed, mode, sync = measure(ns.db, ns.rows, ns.warmup)
    bc.emit(
        {
            "kind": "raw",
            "rows": ns.rows,
            "seconds": elapsed,
            "rate": ns.rows / elapsed,
            "peak_rss_kib": bc.peak_rss_kib(),
            "info": {
                "sqlite_version": sqlite3.sqlite_version,
                "journal_mode": mode,
                "synchronous": sync,
            },
        }
    )


if __name__ == "__main__":
    main()
