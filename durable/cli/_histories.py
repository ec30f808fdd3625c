"""`durable runs histories RUN`: the chain of a run's histories (ctx.continue_as_new())."""

from __future__ import annotations

import click
from rich import box
from rich.table import Table
from rich.text import Text

from durable._views import HistoryInfo
from durable.cli._app import chosen_url, db_option, emit_json, json_option, reading, run
from durable.cli._render import make_console, when
from durable.cli._runs import runs


@runs.command("histories")
@click.argument("run_id")
@db_option
@json_option
@click.pass_context
def histories(ctx: click.Context, run_id: str, db: str | None, as_json: bool) -> None:
    """Show the chain of a run's histories: one per ctx.continue_as_new(), oldest first.
    Events of histories older than the one before the current are deleted; the chain stays."""

    async def go() -> list[HistoryInfo]:
        async with reading(chosen_url(ctx, db)) as engine:
            return await engine.client.histories(run_id)

    chain = run(go())
    if as_json:
        emit_json(chain)
        return
    table = Table(box=box.SIMPLE_HEAD)
    for name in ("generation", "events", "started", "ended", "kept"):
        table.add_column(name)
    for h in chain:
        span = f"{h.first_seq}–" + ("" if h.last_seq is None else str(h.last_seq))
        table.add_row(
            str(h.generation),
            Text(span),
            when(h.started_at),
            when(h.ended_at) if h.ended_at is not None else Text("current", "green"),
            "yes" if h.retained else Text("deleted", "dim"),
        )
    make_console().print(table)
