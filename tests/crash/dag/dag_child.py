"""One worker process of the DAG crash test: python dag_child.py '<config json>'.

It opens the app on the SQLite file, registers the YAML DAG and runs it to its end under a
fixed run id. start() is idempotent on the run id, so a process restarted on the same database
picks the run up again once the killed process's lease has expired. When the run is over it
prints the DagResult as one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import msgspec

from sdk import App


class DagChildConfig(msgspec.Struct, frozen=True, kw_only=True):
    db: str  # absolute path of the SQLite file
    dag: str  # absolute path of the YAML definition
    effects: str  # the side-effect file, passed to the steps as the run's input
    run_id: str
    lease_ttl: float = 1.0
    poll_interval: float = 0.1


async def amain(cfg: DagChildConfig) -> None:
    # The steps' scripts inherit it: each side-effect line names the worker that ran it.
    os.environ["DAG_CRASH_WORKER"] = str(os.getpid())
    app = App(f"sqlite:///{cfg.db}", lease_ttl=cfg.lease_ttl, poll_interval=cfg.poll_interval)
    name = app.register_dag(cfg.dag)
    async with app:
        result = await app.run_dag(name, {"effects": cfg.effects}, run_id=cfg.run_id)
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")
    sys.stdout.flush()


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s pid=%(process)d %(name)s %(levelname)s %(message)s",
    )
    asyncio.run(amain(msgspec.json.decode(sys.argv[1], type=DagChildConfig)))


if __name__ == "__main__":
    main()
