"""`durable runs event RUN KEY` (a value the run set with ctx.set_event, waiting for it) and
`durable runs query RUN NAME [ARGS_JSON...] --app MODULE:APP` (a ctx.on_query handler, answered
by replaying the run in this process: nothing is written)."""

from __future__ import annotations

from typing import Any

import click
import msgspec

from durable._codec import decode_value
from durable._errors import EventNotSetError
from durable._views import plain
from durable.cli._app import (
    CLIError,
    chosen_url,
    db_option,
    emit_json,
    json_option,
    reading,
    run,
    with_app,
)
from durable.cli._escape import escape_controls
from durable.cli._runs import runs
from durable.interact._values import wait_value
from storage import RunValue

# Exit statuses: 0 the value (or answer), 2 a user error (unknown run, bad arguments...),
# 3 not set within --wait, 4 the run ended without setting it.
_NOT_YET = 3
_NEVER = 4


@runs.command("event")
@click.argument("run_id")
@click.argument("key")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="S",
    help="Wait up to S seconds for the run to set it (exit status 3 if it has not); "
    "default: look once.",
)
@db_option
@json_option
@click.pass_context
def event(
    ctx: click.Context, run_id: str, key: str, wait: float, db: str | None, as_json: bool
) -> None:
    """Print the latest value run RUN_ID set for KEY (ctx.set_event), as JSON. Exit status:
    0 found, 2 unknown run, 3 not set within --wait, 4 the run ended without setting it."""

    async def go() -> RunValue:
        async with reading(chosen_url(ctx, db)) as engine:
            return await wait_value(engine.client, run_id, key, timeout=wait)

    try:
        found = run(go())
    except TimeoutError as exc:
        click.echo(escape_controls(str(exc)), err=True)
        ctx.exit(_NOT_YET)
    except EventNotSetError as exc:
        click.echo(escape_controls(str(exc)), err=True)
        ctx.exit(_NEVER)
    value = plain(decode_value(found.value))
    if as_json:
        emit_json({"key": found.key, "value": value, "seq": found.seq, "at": found.updated_at})
        return
    emit_json(value)


@runs.command("query")
@click.argument("run_id")
@click.argument("name")
@click.argument("args", nargs=-1, metavar="[ARGS_JSON]...")
@click.option(
    "--app",
    "app_path",
    metavar="MODULE:APP",
    required=True,
    help="The application with the run's workflow code (the run is replayed here).",
)
@db_option
@click.pass_context
def query(
    ctx: click.Context, run_id: str, name: str, args: tuple[str, ...], app_path: str, db: str | None
) -> None:
    """Ask run RUN_ID's query handler NAME (ctx.on_query), each ARGS_JSON a JSON argument
    (e.g. '"text"' or 5 or '{"a": 1}'); prints the answer as JSON. Nothing is written to the
    run's log."""
    decoded: list[Any] = []
    for i, arg in enumerate(args, 1):
        try:
            decoded.append(msgspec.json.decode(arg))
        except msgspec.DecodeError as exc:
            raise CLIError(
                f"argument {i} ({arg!r:.60}) is not JSON: {exc}; quote strings as '\"text\"'"
            ) from None
    url, registry, _ = with_app(ctx, db, app_path)

    async def go() -> Any:
        async with reading(url, registry) as engine:
            return await engine.client.query(run_id, name, *decoded)

    emit_json(plain(run(go())))
