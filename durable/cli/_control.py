"""Commands that act on runs from outside: `durable signal`, `durable cancel`, `durable prune`.

They write to the database only (a run's inbox, or deleting finished runs); the worker that
executes a run, now or later, takes what arrived into the run's log.
"""

from __future__ import annotations

import re
import time
from typing import Any

import click
import msgspec

from durable._errors import RunNotFoundError
from durable.cli._app import CLIError, chosen_url, cli, db_option, reading, run
from durable.cli._escape import escape_controls

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' -> seconds."""
    match = _AGE.match(text)
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not an age: use a number and a unit, e.g. 30d, 12h, 90m, 45s, 2w"
        )
    return float(match.group(1)) * _UNIT[match.group(2)]


@cli.command("signal")
@click.argument("run_id")
@click.argument("name")
@click.option("--data", metavar="JSON", default="null", help="The payload, as JSON.")
@db_option
@click.pass_context
def signal(ctx: click.Context, run_id: str, name: str, data: str, db: str | None) -> None:
    """Send signal NAME to run RUN_ID (ctx.wait_for_signal(NAME) receives it). Durable once
    the command returns, whether or not a worker is running."""
    try:
        payload: Any = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise CLIError(f"--data is not valid JSON: {exc}") from None

    async def go() -> None:
        async with reading(chosen_url(ctx, db)) as engine:
            await engine.client.signal(run_id, name, payload)

    _acting(go)
    click.echo(escape_controls(f"signal {name!r} sent to run {run_id}"))


@cli.command("cancel")
@click.argument("run_id")
@click.option("--reason", default="", help="Recorded with the cancellation.")
@db_option
@click.pass_context
def cancel(ctx: click.Context, run_id: str, reason: str, db: str | None) -> None:
    """Cancel run RUN_ID and its child runs: running steps are cancelled (scripts and
    JavaScript sandboxes killed), the workflow may run compensation steps, and the run ends
    `cancelled`."""

    ended: list[bool] = []

    async def go() -> None:
        async with reading(chosen_url(ctx, db)) as engine:
            ended.append(await engine.client.cancel(run_id, reason))

    _acting(go)
    if ended and ended[0]:
        click.echo(escape_controls(f"run {run_id} cancelled (it was waiting in its queue)"))
    else:
        click.echo(escape_controls(f"cancellation of run {run_id} requested"))


@cli.command("prune")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="AGE",
    help="Delete runs that finished longer ago than this (30d, 12h, 90m...).",
)
@db_option
@click.pass_context
def prune(ctx: click.Context, older_than: str, db: str | None) -> None:
    """Delete finished runs (succeeded, partial, failed, cancelled) and their events. A child
    whose parent has not finished is kept: the parent still needs it."""
    cutoff = time.time() - parse_age(older_than)

    async def go() -> int:
        total = 0
        async with reading(chosen_url(ctx, db)) as engine:
            while True:
                deleted = await engine.store.prune_runs(cutoff, limit=1000)
                total += deleted
                if deleted < 1000:
                    return total

    deleted = run(go())
    click.echo(f"deleted {deleted} finished run{'' if deleted == 1 else 's'}")


def _acting(go: Any) -> None:
    try:
        run(go())
    except RunNotFoundError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
