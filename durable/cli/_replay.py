"""`durable replay`: re-execute a run's workflow code against its recorded log (no step runs,
nothing is written), or show the state the log had reached at a given event."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from durable._codec import decode_value
from durable._errors import ErrorInfo, RunNotFoundError
from durable._events import (
    LoggedEvent,
    MarkerRecorded,
    RunStarted,
    StepStarted,
    decode_record,
)
from durable._history import read as read_history
from durable._replay import Divergence, ReplayReport, replay, state_at
from durable._state import RunState, apply, fold
from durable._views import StepInfo, event_view, plain, step_info, ts
from durable.cli._app import (
    DIVERGED,
    CLIError,
    cli,
    db_option,
    emit_json,
    json_option,
    reading,
    run,
    with_app,
)
from durable.cli._diff import side_by_side
from durable.cli._render import error_line, make_console, preview, status_text, steps_table
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
@click.argument("run_id", required=False)
@click.option(
    "--app",
    "app_path",
    metavar="MODULE:APP",
    help="The application whose workflow code to replay (required unless --until).",
)
@click.option(
    "--history",
    "history_path",
    metavar="FILE",
    help="Replay an exported history (`durable history export`) instead of a run in the "
    "database; no database is opened.",
)
@click.option(
    "--until",
    "until",
    type=click.IntRange(min=1),
    metavar="SEQ",
    help="Show the state rebuilt from events 1..SEQ instead of re-executing code.",
)
@click.option(
    "--step",
    "stepping",
    is_flag=True,
    help="Walk the history event by event, showing each state change; read commands from "
    "stdin (Enter/n next, c continue, q quit).",
)
@db_option
@json_option
@click.pass_context
def replay_cmd(
    ctx: click.Context,
    run_id: str | None,
    app_path: str | None,
    history_path: str | None,
    until: int | None,
    stepping: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Check that a run's code still replays deterministically against its log.

    Exit status: 0 deterministic, 1 diverged, 2 error."""
    if (run_id is None) == (history_path is None):
        raise CLIError("replay needs either a RUN_ID or --history FILE (exactly one of them)")
    if stepping and (as_json or until is not None):
        raise CLIError("--step is interactive: it cannot be combined with --json or --until")
    history = read_history(history_path) if history_path is not None else None
    if history is not None:
        run_id = history.run.run_id
    assert run_id is not None
    url, registry, _ = with_app(ctx, db, app_path)
    if app_path is None and until is None:
        raise CLIError("replay needs --app MODULE:APP to re-execute the workflow code")

    if until is not None:
        records = history.records() if history is not None else run(_read_records(url, run_id))
        _print_state(run_id, records, until, as_json)
        return

    # The same checks and output for both sources: only where the events come from differs.
    logged = history.logged() if history is not None else run(_read_logged(url, run_id))
    report = run(replay(run_id, logged, registry))
    if stepping and not walk(run_id, logged, report.divergence):
        return  # the user quit: no verdict was reached, nothing more to say
    if as_json:
        emit_json(report)
    else:
        _print_report(report, logged)
    if not report.deterministic:
        ctx.exit(DIVERGED)


def _print_report(report: ReplayReport, logged: Sequence[LoggedEvent]) -> None:
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
    console.print()
    side_by_side(console, div, fold(report.run_id, logged), logged)


async def _read_logged(url: str | None, run_id: str) -> list[LoggedEvent]:
    async with reading(url) as engine:
        return await engine.client.events(run_id)


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


# -- --step: walking the history -------------------------------------------------------------

PROMPT = "[Enter/n] next  [c] continue  [q] quit > "


def walk(run_id: str, logged: Sequence[LoggedEvent], divergence: Divergence | None) -> bool:
    """Print each event and the state change it causes, pausing for a command after each.
    Stops after the event where the code diverges. False if the user quit."""
    console = make_console()
    state = RunState(run_id=run_id)
    stop = divergence.seq if divergence is not None else None
    pausing = True
    for index, event in enumerate(logged):
        before = _snapshot(state)
        # The engine's own fold: the debugger shows exactly the states the engine computes.
        apply(state, event.seq, event.at, event.event)
        console.print(_event_line(event))
        for change in _changes(before, state, event):
            console.print(Text(f"    {change}"))
        if event.seq == stop:
            console.print(Text(f"    ^ the code diverges here (event #{event.seq})", style="red"))
            return True
        if pausing and index < len(logged) - 1:
            command = _ask(console)
            if command == "q":
                console.print(Text(f"quit after event #{event.seq}", style="dim"))
                return False
            pausing = command == "n"
    return True


def _ask(console: Console) -> str:
    """n, c or q. End of input counts as c, so a script may send fewer commands than events."""
    while True:
        console.print(Text(PROMPT, style="dim"), end="")
        console.file.flush()
        line = sys.stdin.readline()
        if not sys.stdin.isatty():
            console.print()  # piped input is not echoed: end the prompt's line ourselves
        if not line:
            return "c"
        command = line.strip().lower() or "n"
        if command in ("n", "c", "q"):
            return command
        console.print(Text(f"unknown command {command!r}: Enter or n, c, q", style="yellow"))


class _Snapshot(msgspec.Struct, frozen=True):
    status: str
    cancel_requested: bool
    steps: dict[int, tuple[str, int]]  # pos -> (status, attempts)


def _snapshot(state: RunState) -> _Snapshot:
    steps = {pos: (s.status, s.attempts) for pos, s in state.steps.items()}
    return _Snapshot(state.status, state.cancel_requested, steps)


def _event_line(logged: LoggedEvent) -> Text:
    view = event_view(logged)
    parts = []
    for key, value in view.fields.items():
        shown = str(value) if isinstance(value, ErrorInfo) else preview(value, 80)
        parts.append(f"{key}={shown}")
    line = Text(f"#{logged.seq} ", style="bold").append(logged.type, style="bold cyan")
    return line.append("  " + "  ".join(parts))


def _changes(before: _Snapshot, state: RunState, logged: LoggedEvent) -> list[str]:
    changes = []
    event = logged.event
    if isinstance(event, RunStarted):
        changes.append(f"run {state.workflow}@{state.version} created ({state.status})")
    if before.status != state.status:
        changes.append(f"run {before.status} -> {state.status}")
    for pos, step in sorted(state.steps.items()):
        old = before.steps.get(pos)
        if old == (step.status, step.attempts):
            continue
        # A step appears in the state with its first start: before that it was pending.
        change = f"step {pos} {step.name!r} {old[0] if old else 'pending'} -> {step.status}"
        if isinstance(event, StepStarted):
            change += f" (attempt {event.attempt})"
        elif step.status in ("retrying", "failed") and step.error is not None:
            change += f" ({step.error})"
        changes.append(change)
    if isinstance(event, MarkerRecorded):
        value = preview(decode_value(event.value), 80)
        changes.append(f"marker {event.pos} ctx.{event.kind}() = {value}")
    if state.cancel_requested and not before.cancel_requested:
        changes.append("cancel requested")
    return changes
