"""Read-only commands: `durable runs list`, `durable runs show`, `durable events`."""

from __future__ import annotations

import click
from rich import box
from rich.table import Table
from rich.text import Text

from durable._approvals import Approval
from durable._client import RUN_STATUSES
from durable._views import EventView, RunInfo, RunSummary, event_view
from durable.cli._app import (
    DurableGroup,
    chosen_url,
    cli,
    db_option,
    emit_json,
    json_option,
    reading,
    run,
)
from durable.cli._approvals import approvals_table
from durable.cli._render import (
    duration,
    error_line,
    events_table,
    make_console,
    preview,
    resources_text,
    safe_text,
    status_text,
    step_resources,
    steps_table,
    usage_text,
    when,
)


@cli.group(cls=DurableGroup)
def runs() -> None:
    """List runs and show one run."""


@runs.command("list")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs in this status.")
@click.option("--workflow", metavar="NAME", help="Only runs of this workflow.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many runs, newest first.",
)
@db_option
@json_option
@click.pass_context
def list_runs(
    ctx: click.Context,
    status: str | None,
    workflow: str | None,
    limit: int,
    db: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first."""

    async def go() -> list[RunSummary]:
        async with reading(chosen_url(ctx, db)) as engine:
            return await engine.client.list_runs(status=status, workflow=workflow, limit=limit)

    found = run(go())
    if as_json:
        emit_json(found)
        return
    console = make_console()
    if not found:
        console.print("no runs", style="dim")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("run id", no_wrap=True)
    table.add_column("workflow", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("duration", justify="right")
    for item in found:
        shown = status_text(item.status)
        if item.waiting_for is not None:
            shown.append(f" (waiting for {item.waiting_for})", "yellow")
        table.add_row(
            Text(item.run_id),
            Text(f"{item.workflow}@{item.version}"),
            shown,
            when(item.created_at),
            duration(item.duration),
        )
    console.print(table)


@runs.command("show")
@click.argument("run_id")
@db_option
@json_option
@click.pass_context
def show_run(ctx: click.Context, run_id: str, db: str | None, as_json: bool) -> None:
    """Show a run: status, input, result or error, and its steps."""

    async def go() -> tuple[RunInfo, list[Approval]]:
        async with reading(chosen_url(ctx, db)) as engine:
            info = await engine.client.get_run(run_id)
            return info, [] if as_json else await engine.client.approvals(run_id)

    info, approvals = run(go())
    if as_json:
        emit_json(info)
        return
    console = make_console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", Text(info.run_id))
    grid.add_row("workflow", Text(f"{info.workflow}@{info.version}"))
    grid.add_row("status", status_text(info.status))
    if info.waiting_for is not None:
        grid.add_row("waiting for", Text(info.waiting_for, "yellow"))
    for what in info.waiting_on:
        grid.add_row("waiting on", Text(what))
    if info.queued is not None:
        grid.add_row("queue", Text(info.queued, "yellow"))
    elif info.queue is not None:
        grid.add_row("queue", Text(info.queue))
    if info.code_changes:
        # Each change reads "<new fingerprint> at event <seq>" (RunInfo.code_changes).
        started = info.fingerprint[:12] or "?"
        changes = ", ".join(info.code_changes)
        grid.add_row(
            "code",
            Text(f"changed since the run started (fingerprint {started} → {changes})", "yellow"),
        )
    if info.forked_from is not None:
        grid.add_row("forked from", Text(f"{info.forked_from}, re-executed from {info.fork_point}"))
    if info.retries:
        at = ", ".join(f"event {seq}" for seq in info.retries)
        times = "once" if len(info.retries) == 1 else f"{len(info.retries)} times"
        grid.add_row("retried", Text(f"{times} ({at})"))
    if info.owner is not None:
        grid.add_row("worker", Text(info.owner))
    if info.parent_run_id is not None:
        grid.add_row("parent", Text(info.parent_run_id))
    grid.add_row("created", when(info.created_at))
    grid.add_row("finished", when(info.finished_at))
    grid.add_row("duration", duration(info.duration))
    grid.add_row("events", str(info.events))
    if info.generation:  # ctx.continue_as_new(): `durable runs histories` shows the chain
        times = "once" if info.generation == 1 else f"{info.generation} times"
        grid.add_row(
            "history",
            Text(
                f"generation {info.generation} (continued as new {times}), "
                f"from event {info.history_start}"
            ),
        )
    if info.usage is not None:
        grid.add_row("usage", safe_text(usage_text(info.usage)))
    scripts = [r for r in map(step_resources, info.steps) if r is not None]
    if scripts:
        cpu, peak = sum(c for c, _ in scripts), max(r for _, r in scripts)
        steps = f"{len(scripts)} script step" + ("" if len(scripts) == 1 else "s")
        grid.add_row("resources", Text(f"{resources_text(cpu, peak)} ({steps})"))
    grid.add_row("input", Text(preview(info.input, 200)))
    if info.status == "succeeded":
        grid.add_row("result", Text(preview(info.result, 200)))
    if info.error is not None:
        grid.add_row("error", error_line(info.error))
    console.print(grid)
    if info.error is not None and info.error.traceback:
        console.print(Text(info.error.traceback.rstrip(), style="dim"))
    console.print()
    if info.steps:
        console.print(steps_table(info.steps))
    else:
        console.print("no steps yet", style="dim")
    if approvals:  # the tool calls its agents asked approval for (`durable approve`)
        console.print()
        console.print(approvals_table(approvals))


@cli.command("events")
@click.argument("run_id")
@db_option
@json_option
@click.pass_context
def events(ctx: click.Context, run_id: str, db: str | None, as_json: bool) -> None:
    """Print a run's raw event log."""

    async def go() -> list[EventView]:
        async with reading(chosen_url(ctx, db)) as engine:
            logged = await engine.client.events(run_id)
        return [event_view(e) for e in logged]

    views = run(go())
    if as_json:
        emit_json(views)
        return
    make_console().print(events_table(views))
