"""`durable diff RUN_A RUN_B`: where two runs' histories part, and which step results differ.

Also home of the two-column table `durable replay` uses to show a divergence side by side.

Events are compared position by position (event 1 with event 1...) on what a run *did*: the
event type, step names, inputs, results, errors (type and message). What differs between any
two runs by nature does not count: timestamps (event times, next_attempt_at, the value of
ctx.now()), marker values in general (ctx.random()/uuid4() differ on every run), run ids
(parent_run_id), the code's fingerprint and error tracebacks (addresses and line numbers).
"""

from __future__ import annotations

import linecache
from collections.abc import Sequence
from typing import Any

import click
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from durable._codec import decode_value
from durable._errors import ErrorInfo
from durable._events import LoggedEvent
from durable._replay import Divergence
from durable._state import RunState, fold
from durable._views import event_view, plain
from durable.cli._app import chosen_url, cli, db_option, emit_json, json_option, reading, run
from durable.cli._render import make_console, preview, status_text

DIFFERENT = 1
# Fields that record when, by whom or with which build, never what the run did: left out of
# the comparison (a fingerprint differs after any code edit, even one that changes nothing).
IGNORED_FIELDS = {
    *("next_attempt_at", "fire_at", "deadline"),  # times
    *("parent_run_id", "run_id", "inbox_id"),  # ids given to this run, its children, its mail
    "fingerprint",
}


class DiffRow(msgspec.Struct, frozen=True):
    field: str
    a: Any
    b: Any
    differs: bool


class StepDifference(msgspec.Struct, frozen=True):
    position: int
    a: Any  # {"name", "status", "result", "error"} or None when the run has no such step
    b: Any


class RunDiff(msgspec.Struct, frozen=True):
    run_a: str
    run_b: str
    identical: bool
    events_a: int
    events_b: int
    first_difference: int | None  # the seq of the first differing event
    event_rows: list[DiffRow] | None  # that event's fields, side by side
    steps: list[StepDifference]


def two_columns(left: str, right: str, rows: Sequence[tuple[str, str, str, bool]]) -> Table:
    """A table of (label, left, right, differs) rows; differing rows are marked and red, so the
    difference reads without color too."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("", no_wrap=True, style="bold")
    table.add_column(left, overflow="fold")
    table.add_column(right, overflow="fold")
    for label, a, b, differs in rows:
        style = "red" if differs else ""
        mark = "*" if differs else " "
        table.add_row(Text(f"{mark} {label}"), Text(a, style=style), Text(b, style=style))
    return table


def comparable(logged: LoggedEvent) -> dict[str, Any]:
    """An event as the comparison sees it: type and the fields that describe behaviour."""
    fields: dict[str, Any] = {"type": logged.type}
    for key, value in event_view(logged).fields.items():
        if key in IGNORED_FIELDS or (logged.type == "MarkerRecorded" and key == "value"):
            continue
        if isinstance(value, ErrorInfo):
            value = {"type": value.type, "message": value.message}
        fields[key] = plain(value)
    return fields


def _step_outcome(state: RunState, pos: int) -> dict[str, Any] | None:
    step = state.steps.get(pos)
    if step is None:
        return None
    view = plain(
        {
            "name": step.name,
            "status": step.status,
            "result": None if step.result is None else decode_value(step.result),
            "error": None if step.error is None else str(step.error),
        }
    )
    assert isinstance(view, dict)
    return view


def diff_histories(
    run_a: str, a: Sequence[LoggedEvent], run_b: str, b: Sequence[LoggedEvent]
) -> RunDiff:
    first: int | None = None
    rows: list[DiffRow] | None = None
    for i in range(max(len(a), len(b))):
        left = comparable(a[i]) if i < len(a) else {}
        right = comparable(b[i]) if i < len(b) else {}
        if left != right:
            first = i + 1
            keys = [*left, *(k for k in right if k not in left)]
            rows = [
                DiffRow(k, left.get(k), right.get(k), left.get(k) != right.get(k)) for k in keys
            ]
            break
    state_a, state_b = fold(run_a, a), fold(run_b, b)
    steps = []
    for pos in sorted(set(state_a.steps) | set(state_b.steps)):
        left_step, right_step = _step_outcome(state_a, pos), _step_outcome(state_b, pos)
        if left_step != right_step:
            steps.append(StepDifference(pos, left_step, right_step))
    return RunDiff(
        run_a=run_a,
        run_b=run_b,
        identical=first is None and not steps,
        events_a=len(a),
        events_b=len(b),
        first_difference=first,
        event_rows=rows,
        steps=steps,
    )


def _head(run_id: str, state: RunState) -> Text:
    text = Text(f"{run_id} ({state.workflow}@{state.version}, ")
    return text.append_text(status_text(state.status)).append(")")


@cli.command("diff", short_help="Compare two runs' histories.")
@click.argument("run_a")
@click.argument("run_b")
@db_option
@json_option
@click.pass_context
def diff_cmd(ctx: click.Context, run_a: str, run_b: str, db: str | None, as_json: bool) -> None:
    """Show the first event where two runs' histories diverge, and the steps whose results
    differ. Timestamps, run ids, marker values and tracebacks do not count.

    Exit status: 0 identical, 1 different, 2 error."""

    async def go() -> tuple[list[LoggedEvent], list[LoggedEvent]]:
        async with reading(chosen_url(ctx, db)) as engine:
            return await engine.client.events(run_a), await engine.client.events(run_b)

    a, b = run(go())
    result = diff_histories(run_a, a, run_b, b)
    if as_json:
        emit_json(result)
    else:
        _print_diff(result, fold(run_a, a), fold(run_b, b))
    if not result.identical:
        ctx.exit(DIFFERENT)


def _print_diff(result: RunDiff, state_a: RunState, state_b: RunState) -> None:
    console = make_console()
    head = Text("runs ").append_text(_head(result.run_a, state_a)).append(" and ")
    head.append_text(_head(result.run_b, state_b))
    if result.identical:
        console.print(head.append(f": the same history ({result.events_a} events)"))
        return
    console.print(head.append(" differ"))
    if result.first_difference is not None and result.event_rows is not None:
        seq = result.first_difference
        console.print(Text(f"first difference at event #{seq}", style="bold"))
        rows = [
            (
                r.field,
                _shown(r.a, seq, result.events_a),
                _shown(r.b, seq, result.events_b),
                r.differs,
            )
            for r in result.event_rows
        ]
        console.print(two_columns(result.run_a, result.run_b, rows))
    if result.steps:
        console.print(Text("steps whose results differ", style="bold"))
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for title in ("#", "step", result.run_a, result.run_b):
            table.add_column(title, overflow="fold")
        for step in result.steps:
            name = (step.a or step.b)["name"]
            table.add_row(str(step.position), Text(name), _outcome(step.a), _outcome(step.b))
        console.print(table)
    else:
        console.print(Text("no step result differs", style="dim"))


def _shown(value: Any, seq: int, total: int) -> str:
    if value is None and seq > total:
        return "(no event: the history ends)"
    return "-" if value is None else value if isinstance(value, str) else preview(value, 80)


def _outcome(step: dict[str, Any] | None) -> Text:
    if step is None:
        return Text("(no such step)", style="dim")
    if step["error"] is not None:
        return Text(f"{step['status']}: {step['error']}", style="red")
    if step["status"] != "succeeded":
        return Text(step["status"])
    return Text(preview(step["result"], 80))


# -- a replay divergence, side by side -------------------------------------------------------


def side_by_side(
    console: Console, div: Divergence, state: RunState, events: Sequence[LoggedEvent]
) -> None:
    """Left: what the log recorded where the code diverged. Right: what the code does now,
    with the line of source that does it (read from the file as it is now)."""
    at = [e for e in events if div.position is not None and _pos(e) == div.position]
    if div.seq is not None and not any(e.seq == div.seq for e in at):
        at = [e for e in events if e.seq == div.seq]  # a DAG's event, or the run's end
    where = f"position {div.position}" if div.position is not None else "the end of the run"
    seq = f" (event #{div.seq})" if div.seq is not None else ""
    console.print(Text(f"side by side at {where}{seq}", style="bold"))
    rows: list[tuple[str, str, str, bool]] = [
        ("events", ", ".join(f"{e.type} #{e.seq}" for e in at) or "-", "-", False),
        ("command", div.recorded, div.requested, True),
    ]
    step = state.steps.get(div.position) if div.position is not None else None
    marker = state.markers.get(div.position) if div.position is not None else None
    if step is not None:
        tries = "attempt" if step.attempts == 1 else "attempts"
        rows.append(("status", f"{step.status}, {step.attempts} {tries}", "-", False))
        if step.input is not None:
            rows.append(("input", preview(decode_value(step.input), 80), "-", False))
        if step.error is not None:
            rows.append(("error", str(step.error), "-", False))
        elif step.result is not None:
            rows.append(("result", preview(decode_value(step.result), 80), "-", False))
    elif marker is not None:
        rows.append(("value", preview(decode_value(marker.value), 80), "-", False))
    elif div.position is None:
        rows.append(("run", state.status, "-", False))
        if state.error is not None:
            rows.append(("error", str(state.error), "-", False))
        elif state.result is not None:
            rows.append(("result", preview(decode_value(state.result), 80), "-", False))
    rows.append(("location", "-", div.where, False))
    line = source_line(div.where)
    if line:
        rows.append(("code", "-", line, False))
    console.print(two_columns("log (recorded)", "code (now)", rows))


def _pos(logged: LoggedEvent) -> int | None:
    pos = getattr(logged.event, "pos", None)
    return pos if isinstance(pos, int) else None


def source_line(where: str) -> str:
    """The text of `file:line`, read now (the code that diverges is the code on disk)."""
    path, _, line = where.rpartition(":")
    if not path or not line.isdigit():
        return ""
    linecache.checkcache(path)
    return linecache.getline(path, int(line)).strip()
