"""`durable approvals`, `durable approve`, `durable deny`: human decisions on the tool calls of
a run's durable agents (see docs/agents.md). Like `durable signal`, they write to the run's
inbox only: the worker running the run, now or later, takes the decision into its log."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from rich import box
from rich.table import Table
from rich.text import Text

from durable._approvals import Approval
from durable._errors import RunNotFoundError
from durable.cli._app import (
    CLIError,
    chosen_url,
    cli,
    db_option,
    emit_json,
    json_option,
    reading,
    run,
)
from durable.cli._escape import escape_controls
from durable.cli._render import make_console, preview, when

T = TypeVar("T")


def approvals_table(approvals: list[Approval]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("tool call", "agent", "tool", "args", "requested", "status", "reason"):
        table.add_column(name, no_wrap=name not in ("args", "reason"))
    style = {"pending": "yellow", "approved": "green", "denied": "red"}
    for a in approvals:
        table.add_row(
            Text(a.tool_call_id),
            Text(a.agent),
            Text(a.tool_name),
            Text(preview(a.args, 60)),
            when(a.requested_at),
            Text(a.status, style=style.get(a.status, "")),
            Text(a.reason or ""),
        )
    return table


@cli.command("approvals")
@click.argument("run_id")
@db_option
@json_option
@click.pass_context
def approvals(ctx: click.Context, run_id: str, db: str | None, as_json: bool) -> None:
    """List the tool calls of run RUN_ID's agents that needed approval: pending, approved or
    denied."""

    async def go() -> list[Approval]:
        async with reading(chosen_url(ctx, db)) as engine:
            return await engine.client.approvals(run_id)

    found = _acting(go)
    if as_json:
        emit_json(found)
        return
    console = make_console()
    if not found:
        console.print(f"run {escape_controls(run_id)} has no approval requests", style="dim")
        return
    console.print(approvals_table(found))


@cli.command("approve")
@click.argument("run_id")
@click.argument("call_id")
@click.option("--reason", default=None, help="Recorded with the decision.")
@db_option
@click.pass_context
def approve(
    ctx: click.Context, run_id: str, call_id: str, reason: str | None, db: str | None
) -> None:
    """Approve tool call CALL_ID of run RUN_ID: its agent runs the tool and goes on."""
    _decide(ctx, run_id, call_id, True, reason, db)


@cli.command("deny")
@click.argument("run_id")
@click.argument("call_id")
@click.option("--reason", required=True, help="What the model is told (the tool does not run).")
@db_option
@click.pass_context
def deny(ctx: click.Context, run_id: str, call_id: str, reason: str, db: str | None) -> None:
    """Deny tool call CALL_ID of run RUN_ID: the tool does not run, and the model is told
    REASON."""
    _decide(ctx, run_id, call_id, False, reason, db)


def _decide(
    ctx: click.Context,
    run_id: str,
    call_id: str,
    approved: bool,
    reason: str | None,
    db: str | None,
) -> None:
    async def go() -> Approval:
        async with reading(chosen_url(ctx, db)) as engine:
            return await engine.client.decide(run_id, call_id, approved=approved, reason=reason)

    decided = _acting(go)
    click.echo(
        escape_controls(
            f"tool call {decided.tool_call_id} ({decided.tool_name}) of run {run_id} "
            f"{decided.status}"
        )
    )


def _acting(go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return run(go())
    except (RunNotFoundError, ValueError) as exc:  # ApprovalError, a bad id
        raise CLIError(str(exc)) from None
