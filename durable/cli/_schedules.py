"""`durable schedules list|pause|resume|trigger|backfill`: the cron schedules in a database.

Listing, pausing and resuming need only the database (a schedule's state lives there, and every
worker reads it). Triggering and backfilling start runs, which needs the workflow's code:
--app MODULE:APP, as `durable worker` takes it (or a definition stored in the database).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from rich import box
from rich.table import Table

from durable._errors import DurableError, ScheduleError, UnknownWorkflowError
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
    with_app,
)
from durable.cli._escape import escape_controls
from durable.cli._render import make_console, safe_text
from durable.schedules._control import (
    ScheduleInfo,
    backfill,
    list_schedules,
    set_paused,
    trigger,
)

T = TypeVar("T")

APP_HELP = "The application with the workflow's code (MODULE:APP), as `durable worker` takes it."


@cli.group(cls=DurableGroup)
def schedules() -> None:
    """List, pause, resume, trigger and backfill cron schedules."""


def _do(go: Callable[[], Awaitable[T]]) -> T:
    try:
        return run(go())  # type: ignore[arg-type]
    except UnknownWorkflowError as exc:
        raise CLIError(f"{exc}; pass --app MODULE:APP, the application with its code") from None
    except (ScheduleError, DurableError, ValueError) as exc:
        raise CLIError(str(exc)) from None


@schedules.command("list")
@db_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """Every schedule with its cron, timezone, policies and next fire time (UTC)."""

    async def go() -> list[ScheduleInfo]:
        async with reading(chosen_url(ctx, db)) as engine:
            return await list_schedules(engine.client)

    found = _do(go)
    if as_json:
        emit_json(found)
        return
    console = make_console()
    if not found:
        console.print("no schedules", style="dim")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("schedule", "workflow", "cron", "timezone", "next run (UTC)", "last run"):
        table.add_column(column, no_wrap=True)
    for item in found:
        if item.paused:
            next_run = safe_text("paused", "yellow")
        elif item.waiting_for_previous:
            next_run = safe_text("waiting for the previous run", "yellow")
        else:
            next_run = safe_text(item.next_run or "-")
        table.add_row(
            safe_text(item.name),
            safe_text(item.workflow),
            safe_text(item.cron),
            safe_text(item.timezone),
            next_run,
            safe_text(item.last_run_id or "-"),
        )
    console.print(table)


def _pause(ctx: click.Context, name: str, db: str | None, paused: bool) -> None:
    async def go() -> ScheduleInfo:
        async with reading(chosen_url(ctx, db)) as engine:
            return await set_paused(engine.client, name, paused)

    info = _do(go)
    state = "paused" if paused else f"resumed: next run {info.next_run}"
    click.echo(escape_controls(f"schedule {name} {state}"))


@schedules.command("pause")
@click.argument("name")
@db_option
@click.pass_context
def pause(ctx: click.Context, name: str, db: str | None) -> None:
    """Stop firing schedule NAME, on every worker, until resumed."""
    _pause(ctx, name, db, True)


@schedules.command("resume")
@click.argument("name")
@db_option
@click.pass_context
def resume(ctx: click.Context, name: str, db: str | None) -> None:
    """Fire schedule NAME again from its next tick (ticks missed while paused are not run:
    backfill them if they should be)."""
    _pause(ctx, name, db, False)


@schedules.command("trigger")
@click.argument("name")
@click.option("--app", "app_path", metavar="MODULE:APP", help=APP_HELP)
@db_option
@click.pass_context
def trigger_cmd(ctx: click.Context, name: str, app_path: str | None, db: str | None) -> None:
    """Start a run of schedule NAME now; prints its run id. A worker executes it."""
    loaded = with_app(ctx, db, app_path)

    async def go() -> str:
        async with reading(loaded.url, loaded.registry) as engine:
            await engine.definitions.sync()
            return await trigger(engine.client, name)

    click.echo(escape_controls(_do(go)))


@schedules.command("backfill")
@click.argument("name")
@click.option(
    "--from", "start", required=True, metavar="TIME", help="ISO 8601, e.g. 2026-12-01T00:00Z."
)
@click.option("--to", "end", required=True, metavar="TIME", help="ISO 8601 (included).")
@click.option("--app", "app_path", metavar="MODULE:APP", help=APP_HELP)
@db_option
@click.pass_context
def backfill_cmd(
    ctx: click.Context, name: str, start: str, end: str, app_path: str | None, db: str | None
) -> None:
    """Run every tick of schedule NAME from --from to --to that has no run yet (a worker
    executes them); prints the ticks' run ids, oldest first."""
    loaded = with_app(ctx, db, app_path)

    async def go() -> list[str]:
        async with reading(loaded.url, loaded.registry) as engine:
            await engine.definitions.sync()
            return await backfill(engine.client, name, start, end)

    for run_id in _do(go):
        click.echo(escape_controls(run_id))
