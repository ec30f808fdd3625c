"""The peers `api_load.py` measures `durable serve` against: bare Litestar under uvicorn.

    python benchmarks/api_peer.py --port 3200 --db /tmp/peer.db   # one SQLite commit per start
    python benchmarks/api_peer.py --port 3200                     # no database at all

Both accept the very body `POST /executions/start` takes, decode it into a msgspec struct and
answer 201 {"executionId": ...}, on the same framework, server, event loop and HTTP parser as
`durable serve`. With --db each request commits one row (id, workflow, input, time) to a
SQLite file in WAL mode with synchronous=FULL, as the engine's store does: what an API that
writes a run row per request and nothing else costs. Without --db it is the framework's own
ceiling. Neither keeps an event log, checks a workflow or wakes a worker, so `durable serve`
should be slower than the first; how much slower is the figure worth watching.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
import uuid
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, get, post


class StartRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    workflow_id: str
    context: Any = None
    execution_id: str | None = None


class StartResponse(msgspec.Struct, rename="camel"):
    execution_id: str


def create(db: str | None) -> Litestar:
    conn: sqlite3.Connection | None = None
    if db is not None:
        # check_same_thread=False: uvicorn runs every handler on its one loop thread anyway.
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL,"
            " input BLOB NOT NULL, created_at REAL NOT NULL)"
        )

    @post("/executions/start", status_code=201)
    async def start(data: StartRequest) -> StartResponse:
        run_id = data.execution_id or uuid.uuid4().hex
        if conn is not None:
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?)",
                (run_id, data.workflow_id, msgspec.json.encode(data.context), time.time()),
            )
        return StartResponse(execution_id=run_id)

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(route_handlers=[start, health], openapi_config=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", help="SQLite file to commit one row per start into")
    ns = parser.parse_args()
    uvicorn.run(
        create(ns.db), host="127.0.0.1", port=ns.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
