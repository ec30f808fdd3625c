"""`durable queues list|show`: the queues declared in a database, their limits and where they
stand (waiting, running, oldest waiting run). Needs only the database: queue declarations and
the runs waiting in them live there."""

from __future__ import annotations

import time

import click
from rich import box
from rich.table import Table

from durable._errors import DurableError
from durable.cli._app import (
    CLIError,
    DurableGroup,
    chosen_url,
    cli,
    db_option,
    emit_json,
    json_option,
    reading,
    run,
)
from durable.cli._escape import escape_controls
from durable.cli._render import make_console, safe_text
from durable.queues._control import QueueInfo, list_queues, show_queue


@cli.group(cls=DurableGroup)
def queues() -> None:
    """List queues and show one: limits, depth, running, oldest waiting run."""


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _rate(info: QueueInfo) -> str:
    if info.rate_limit is None or info.rate_period is None:
        return "-"
    return f"{info.rate_limit}/{info.rate_period:g}s"


def _age(oldest: float | None, now: float) -> str:
    return "-" if oldest is None else f"{max(now - oldest, 0.0):.1f}s"


@queues.command("list")
@db_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """Every queue with its limits, waiting and running runs, and the oldest wait."""

    async def go() -> list[QueueInfo]:
        async with reading(chosen_url(ctx, db)) as engine:
            return await list_queues(engine.client.store)

    try:
        found: list[QueueInfo] = run(go())
    except (DurableError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        emit_json(found)
        return
    console = make_console()
    if not found:
        console.print("no queues", style="dim")
        return
    now = time.time()
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("queue", "waiting", "running", "limit", "per worker", "rate", "oldest wait"):
        table.add_column(column, no_wrap=True)
    for q in found:
        table.add_row(
            safe_text(q.name),
            str(q.waiting),
            str(q.running),
            _limit(q.concurrency),
            _limit(q.worker_concurrency),
            _rate(q),
            _age(q.oldest_waiting, now),
        )
    console.print(table)


@queues.command("show")
@click.argument("name")
@db_option
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, name: str, db: str | None, as_json: bool) -> None:
    """Queue NAME: its limits, where it stands, and why its waiting runs wait."""

    async def go() -> QueueInfo:
        async with reading(chosen_url(ctx, db)) as engine:
            return await show_queue(engine.client.store, name)

    try:
        q: QueueInfo = run(go())
    except (DurableError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        emit_json({**q.__dict__, "why_waiting": q.why_waiting if q.waiting else None})
        return
    lines = [
        f"queue {q.name}",
        f"  waiting      {q.waiting}",
        f"  running      {q.running}",
        f"  limit        {_limit(q.concurrency)}",
        f"  per worker   {_limit(q.worker_concurrency)}",
        f"  per partition {_limit(q.partition_concurrency)}",
        f"  rate         {_rate(q)}",
        f"  oldest wait  {_age(q.oldest_waiting, time.time())}",
    ]
    if q.waiting:
        lines.append(f"  {q.why_waiting}")
    click.echo(escape_controls("\n".join(lines)))
