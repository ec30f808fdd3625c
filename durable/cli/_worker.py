"""`durable worker MODULE:APP`: execute runs until SIGINT or SIGTERM, then stop gracefully."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from types import FrameType
from typing import Any

import click

from durable._engine import URL_ENV, Engine
from durable._loader import load_app
from durable._options import WorkerOptions
from durable.cli._app import Interrupted, chosen_url, cli, db_option, run
from durable.cli._policy import apply_policy, policy_options
from durable.runtime._registry import Registry
from storage import ACTIVE_STATUSES, RunQuery, StorageError

log = logging.getLogger("durable.cli")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POSITIVE = click.FloatRange(min=0, min_open=True)


@cli.command("worker", short_help="Execute runs until Ctrl-C or SIGTERM.")
@click.argument("app_path", metavar="MODULE:APP")
@db_option
@click.option("--lease-ttl", type=POSITIVE, metavar="S", help="Lease duration in seconds.")
@click.option(
    "--poll-interval", type=POSITIVE, metavar="S", help="Seconds between looks for new runs."
)
@click.option(
    "--max-concurrent-runs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Runs executed at once by this worker.",
)
@click.option(
    "--snapshot-every",
    type=click.IntRange(min=0),
    metavar="N",
    help="A DAG run stores a snapshot of its state every N events (default 1000; 0: never).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@policy_options
@click.pass_context
def worker(
    ctx: click.Context,
    app_path: str,
    db: str | None,
    lease_ttl: float | None,
    poll_interval: float | None,
    max_concurrent_runs: int | None,
    snapshot_every: int | None,
    log_level: str,
    allow_module: tuple[str, ...],
    expose_env: tuple[str, ...],
) -> None:
    """Execute the runs of an application's workflows until Ctrl-C or SIGTERM.

    Options not given come from the application (sdk.App(lease_ttl=...)); the database is
    --db, else $DURABLE_DATABASE_URL, else the application's own URL. On a stop signal the
    worker stops claiming runs, cuts the current steps short and gives its leases back, so
    another worker continues at once; nothing recorded is lost."""
    # Ctrl-C before the worker's own handlers are in place (while the app is imported) ends
    # the command quietly; a KeyboardInterrupt Python swallows (raised inside a callback of
    # the import machinery) is remembered and honoured before the database is opened.
    early = _EarlyInterrupt()
    signal.signal(signal.SIGINT, early.handle)
    app = load_app(app_path)
    apply_policy(app.registry, allow_module, expose_env)
    # The operator's choice (--db, then the environment) beats the URL written in the app.
    url = chosen_url(ctx, db) or os.environ.get(URL_ENV) or app.database_url
    overrides: dict[str, Any] = {
        "lease_ttl": lease_ttl,
        "poll_interval": poll_interval,
        "max_concurrent_runs": max_concurrent_runs,
        "snapshot_every": snapshot_every,
    }
    options = dataclasses.replace(
        app.worker_options, **{k: v for k, v in overrides.items() if v is not None}
    )
    if options.owner is None:
        # Chosen here rather than by the worker so the start line can name it before any
        # "resuming run" line is logged.
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        options = dataclasses.replace(options, owner=owner)
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    early.check()
    run(_serve(url, app.registry, options, early))
    _wait_for_step_threads()


class _EarlyInterrupt:
    def __init__(self) -> None:
        self.received = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.received:
            raise Interrupted()


async def _serve(
    url: str, registry: Registry, options: WorkerOptions, early: _EarlyInterrupt
) -> None:
    engine = Engine(url, registry, options=options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting now; leases expire after %.0fs", name, options.lease_ttl)
            _exit_now(128 + signum)
        log.info("%s: stopping (no new claims, giving leases back)", name)
        stop.set()

    # Installed before opening, so a signal during start-up still shuts down cleanly.
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        early.check()  # a Ctrl-C before these handlers: nothing is open yet, stop here
        await engine.open()
        try:
            names = ", ".join(registry.names()) or "none"
            click.echo(
                f"durable worker {options.owner} on {engine.store.url} running {names} "
                f"(Ctrl-C to stop)"
            )
            sys.stdout.flush()
            await _warn_unrunnable(engine, registry)
            await stop.wait()
        finally:
            await engine.close()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    click.echo(f"durable worker {options.owner} stopped")


async def _warn_unrunnable(engine: Engine, registry: Registry) -> None:
    """Unfinished runs of a workflow version this worker lacks are left for a worker that has
    it: say so, instead of letting them look stuck."""
    if not registry.keys():
        log.warning("no workflows are registered in this application: nothing will run")
    known = set(registry.keys())
    missing: dict[str, int] = {}
    try:
        for status in ACTIVE_STATUSES:
            for rec in await engine.store.list_runs(RunQuery(status=status, limit=1000)):
                if (rec.workflow, rec.version) not in known:
                    key = f"{rec.workflow}@{rec.version}"
                    missing[key] = missing.get(key, 0) + 1
    except StorageError as exc:  # only a courtesy check: the worker itself carries on
        log.warning("could not look for runs of other versions: %s", exc)
        return
    for key, count in sorted(missing.items()):
        log.warning(
            "%d unfinished run(s) of %s are left for a worker that has that version", count, key
        )


def _wait_for_step_threads() -> None:
    """Synchronous steps cut short may still be running in their threads; the interpreter
    waits for them at exit. Let a further signal end the wait."""
    busy = [t for t in threading.enumerate() if t.name.startswith("durable-step")]
    for thread in busy:
        thread.join(0.1)  # idle pool threads exit at once; only a step still running stays
    busy = [t for t in busy if t.is_alive()]
    if not busy:
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: _exit_now(128 + signum))
    click.echo(
        f"waiting for {len(busy)} step thread(s) to return (their results are not recorded; "
        "the steps run again); signal again to exit now",
        err=True,
    )


def _exit_now(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
