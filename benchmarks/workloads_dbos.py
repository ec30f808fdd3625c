"""DBOS Transact side of the benchmark: one workload, one fresh process.

Runs only under the benchmark's private virtual environment (see dbos_venv.py):
DBOS is never a dependency of the project, which is why its import is unchecked.

Two ways of driving DBOS are offered so that the comparison is against DBOS at
its best rather than at one arbitrary API:
  --api sync   plain workflows and steps; (a) calls the workflow directly, (b) uses
               DBOS.start_workflow (DBOS's thread pool) and blocking handles.
  --api async  coroutine workflows and steps; (a) awaits the workflow, (b) gathers
               DBOS.start_workflow_async handles on one event loop.
  --journal    DBOS leaves SQLite in its default rollback-journal mode; "wal"
               switches the file to WAL before DBOS opens it (the mode persists in
               the file), the tuning a user would reach for first. SQLite only.

With a postgresql:// URL as --db, DBOS's system database is that (empty) database,
reached through psycopg with DBOS's default pool, exactly as DBOS ships.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TypeVar, cast

import bench_common as bc
from dbos import DBOS  # type: ignore[import-not-found]

F = TypeVar("F", bound=Callable[..., object])


# DBOS's decorators are untyped from mypy's point of view (the package is absent
# from the project's environment); these wrappers keep the decorated functions'
# real signatures visible to the type checker.
def _step(fn: F) -> F:
    return cast(F, DBOS.step()(fn))


def _workflow(fn: F) -> F:
    return cast(F, DBOS.workflow()(fn))


@_step
def noop(i: int) -> int:
    return i


@_workflow
def ten_steps(n: int) -> int:
    total = 0
    for i in range(bc.STEPS_PER_WORKFLOW):
        total += noop(i)
    return total


@_step
async def noop_async(i: int) -> int:
    return i


@_workflow
async def ten_steps_async(n: int) -> int:
    total = 0
    for i in range(bc.STEPS_PER_WORKFLOW):
        total += await noop_async(i)
    return total


def run_many_threads(count: int) -> list[int]:
    handles = [DBOS.start_workflow(ten_steps, i) for i in range(count)]
    return [int(h.get_result()) for h in handles]


async def run_one_async(i: int) -> int:
    return await ten_steps_async(i)


async def run_many_async(count: int) -> list[int]:
    # Started together, then awaited together: "all started, then all awaited".
    handles = await asyncio.gather(
        *(DBOS.start_workflow_async(ten_steps_async, i) for i in range(count))
    )
    return [int(r) for r in await asyncio.gather(*(h.get_result() for h in handles))]


def main() -> None:
    parser = bc.workload_parser(__doc__ or "")
    parser.add_argument("--api", choices=["sync", "async"], required=True)
    parser.add_argument("--journal", choices=["default", "wal"], default="default")
    ns = parser.parse_args()
    args = bc.workload_args(ns)
    postgres = bc.is_postgres(args.db)
    if postgres and ns.journal != "default":
        parser.error("--journal is for SQLite only")

    if ns.journal == "wal":
        conn = sqlite3.connect(args.db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()

    DBOS(
        config={
            "name": "durable-bench",
            # DBOS sets the driver to psycopg (3) itself; psycopg is one of its dependencies.
            "system_database_url": args.db if postgres else f"sqlite:///{args.db}",
            # INFO logs a line per launch only, but WARNING keeps stderr readable
            # when the parent has to show it after a failure.
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        if ns.api == "sync":
            elapsed = bc.timed_sync(args, ten_steps, run_many_threads)
        else:
            elapsed = asyncio.run(bc.timed_async(args, run_one_async, run_many_async))
    finally:
        DBOS.destroy()

    info: dict[str, object] = {
        "dbos_version": version("dbos"),
        "sqlalchemy_version": version("sqlalchemy"),
        "api": ns.api,
    }
    if postgres:
        info["psycopg_version"] = version("psycopg")
    else:
        info["journal_mode"] = bc.journal_mode(Path(args.db))
    bc.emit_workload(args, elapsed, info)


if __name__ == "__main__":
    main()
