"""A worker process of the fuzzer, run as a script: python fuzz_worker.py '<config json>'.

It opens the database with the fuzz app's definitions and executes runs until it is killed.
With `kill_after_commits: N` it SIGKILLs itself right after the N-th write transaction that
succeeded (on the SQLite writer, before the event loop learns of it): a kill at an exact commit
boundary, which a time-based kill from the parent rarely hits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import sys
from typing import Any

import msgspec
from fuzz_app import build_app

from storage._sqlite_writer import SQLiteWriter


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    effects: str
    lease_ttl: float = 1.0
    poll_interval: float = 0.05
    park_after: float = 1.0
    kill_after_commits: int | None = None


def install_commit_killer(n: int) -> None:
    orig = SQLiteWriter._apply
    done = [0]

    def apply(
        self: SQLiteWriter, conn: sqlite3.Connection, batch: Any, *, wait_for_lock: bool
    ) -> Any:
        outcomes = orig(self, conn, batch, wait_for_lock=wait_for_lock)
        done[0] += sum(1 for _, ok, _ in outcomes if ok)
        if done[0] >= n:
            os.kill(os.getpid(), signal.SIGKILL)
        return outcomes

    SQLiteWriter._apply = apply  # type: ignore[method-assign]


async def amain(cfg: WorkerConfig) -> None:
    app = build_app(
        cfg.url,
        cfg.effects,
        lease_ttl=cfg.lease_ttl,
        poll_interval=cfg.poll_interval,
        park_after=cfg.park_after,
    )
    if cfg.kill_after_commits is not None and cfg.url.startswith("sqlite"):
        install_commit_killer(cfg.kill_after_commits)
    async with app:
        print("ready", flush=True)
        await asyncio.Event().wait()  # until killed


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s pid=%(process)d %(name)s %(levelname)s %(message)s",
    )
    cfg = msgspec.json.decode(sys.argv[1], type=WorkerConfig)
    asyncio.run(amain(cfg))


if __name__ == "__main__":
    main()
