"""`durable replay`: re-execute a run's workflow code against its recorded log (no step runs,
nothing is written), or show the state the log had reached at a given event."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import click
import msgspec
from rich.table import Table
from rich.text import Text

from durable._codec import decode_value
from durable._engine import URL_ENV
from durable._errors import ErrorInfo, RunNotFoundError
from durable._events import decode_record
from durable._loader import load_app
from durable._registry import Registry
from durable._replay import ReplayReport, replay, state_at
from durable._state import RunState
from durable._views import StepInfo, step_info, ts
from durable.cli._app import (
    DIVERGED,
    CLIError,
    chosen_url,
    cli,
    db_option,
    emit_json,
    json_option,
    reading,
    run,
)
from durable.cli._render import (
    error_line,
    make_console,
    plain,
    preview,
    status_text,
    steps_table,
)
from storage import EventRecord


class StateView(msgspec.Struct, frozen=True):
    """`durable replay RUN_ID --until SEQ --json`: the state folded from events 1..SEQ."""

    run_id: str
    workflow: str
    version: str
    until_seq: int
    events: int
    status: str
    input: Any
    result: Any
    error: ErrorInfo | None
    created_at: dt.datetime | None
    finished_at: dt.datetime | None
    cancel_requested: bool
    steps: list[StepInfo]


@cli.command("replay", short_help="Replay a run's code against its log (no side effects).")
@click.argument("run_id")
@click.option(
    "--app",
    "app_path",
    metavar="MODULE:APP",
    help="The application whose workflow code to replay (required unless --until).",
)
@click.option(
    "--until",
    "until",
    type=click.IntRange(min=1),
    metavar="SEQ",
    help="Show the state rebuilt from events 1..SEQ instead of re-executing code.",
)
@db_option
@json_option
@click.pass_context
def replay_cmd(
    ctx: click.Context,
    run_id: str,
    app_path: str | None,
    until: int | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Check that a run's code still replays deterministically against its log.

    Exit status: 0 deterministic, 1 diverged, 2 error."""
    url = chosen_url(ctx, db)
    registry = Registry()
    if app_path is not None:
        app = load_app(app_path)
        registry = app.registry
        url = url or os.environ.get(URL_ENV) or app.database_url
    elif until is None:
        raise CLIError("replay needs --app MODULE:APP to re-execute the workflow code")

    if until is not None:
        records = run(_read_records(url, run_id))
        _print_state(run_id, records, until, as_json)
        return

    async def go() -> ReplayReport:
        async with reading(url, registry) as engine:
            logged = await engine.client.events(run_id)
        return await replay(run_id, logged, registry)

    report = run(go())
    if as_json:
        emit_json(report)
    else:
        _print_report(report)
    if not report.deterministic:
        ctx.exit(DIVERGED)


def _print_report(report: ReplayReport) -> None:
    console = make_console()
    head = Text(f"run {report.run_id} ({report.workflow}@{report.version}, ")
    head.append_text(status_text(report.status))
    replayed = report.positions_replayed
    plural = "" if replayed == 1 else "s"
    head.append(f"): {report.events} events, {replayed} position{plural} replayed")
    console.print(head)
    div = report.divergence
    if div is None:
        line = Text("deterministic", style="bold green")
        if report.reached_end_of_history:
            line.append(
                " so far: the code reached the end of the recorded history (the run is unfinished)",
                style="green",
            )
        console.print(line)
        return
    console.print(Text("NOT deterministic", style="bold red"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    position = "end of run" if div.position is None else str(div.position)
    grid.add_row("position", Text(position))
    grid.add_row("recorded", Text(div.recorded))
    grid.add_row("requested", Text(div.requested))
    grid.add_row("source", Text(div.where))
    console.print(grid)
    console.print(Text(div.message, style="dim"), soft_wrap=True)


async def _read_records(url: str | None, run_id: str) -> list[EventRecord]:
    async with reading(url) as engine:
        records = await engine.store.read_events(run_id)
        if not records and await engine.store.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        return records


def _print_state(run_id: str, records: list[EventRecord], until: int, as_json: bool) -> None:
    last = records[-1].seq if records else 0
    if until > last:
        raise CLIError(f"run {run_id!r} has {last} events; --until must be between 1 and {last}")
    # Only events 1..SEQ are decoded: the state before a damaged event stays inspectable.
    logged = [decode_record(r) for r in records if r.seq <= until]
    state = state_at(run_id, logged, until)
    view = _state_view(state, until, len(records))
    if as_json:
        emit_json(view)
        return
    console = make_console()
    head = Text(f"run {run_id} ({view.workflow}@{view.version}) after event {until} of {last}: ")
    head.append_text(status_text(view.status))
    if view.cancel_requested and view.status != "cancelled":
        head.append(" (cancel requested)", style="magenta")
    console.print(head)
    if view.status == "succeeded":
        console.print(Text(f"result  {preview(view.result, 200)}"))
    if view.error is not None:
        console.print(Text("error   ").append_text(error_line(view.error)))
    console.print()
    if view.steps:
        console.print(steps_table(view.steps))
    else:
        console.print("no steps yet", style="dim")


def _state_view(state: RunState, until: int, total: int) -> StateView:
    return StateView(
        run_id=state.run_id,
        workflow=state.workflow,
        version=state.version,
        until_seq=until,
        events=total,
        status=state.status,
        input=plain(decode_value(state.input)) if state.input is not None else None,
        result=plain(decode_value(state.result)) if state.result is not None else None,
        error=state.error,
        created_at=ts(state.created_at),
        finished_at=ts(state.finished_at),
        cancel_requested=state.cancel_requested,
        steps=[step_info(s) for _, s in sorted(state.steps.items())],
    )
