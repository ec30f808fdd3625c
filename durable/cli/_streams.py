"""`durable runs stream RUN KEY`: a run's stream, followed live in the terminal."""

from __future__ import annotations

import sys

import click
import msgspec

from durable._views import plain
from durable.cli._app import chosen_url, db_option, json_option, reading, run
from durable.cli._escape import escape_controls
from durable.cli._runs import runs


@runs.command("stream")
@click.argument("run_id")
@click.argument("key")
@click.option(
    "--after",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Skip the first N values (resume after offset N).",
)
@db_option
@json_option
@click.pass_context
def stream(
    ctx: click.Context, run_id: str, key: str, after: int, db: str | None, as_json: bool
) -> None:
    """Print the values a run writes to its stream KEY as they come (ctx.write_stream,
    durable.write_stream): text as it is, other values as JSON, one per line. Ends once the
    stream is closed or the run has ended. --json: one {"offset", "value"} object per line."""

    async def go() -> None:
        async with reading(chosen_url(ctx, db)) as engine:
            ended_line = True
            async for item in engine.client.stream_items(run_id, key, after=after):
                if as_json:
                    text = _json({"offset": item.offset, "value": item.value}) + "\n"
                elif isinstance(item.value, str):
                    text = escape_controls(item.value)  # stored text runs no terminal sequence
                else:
                    text = ("" if ended_line else "\n") + _json(item.value) + "\n"
                sys.stdout.write(text)
                sys.stdout.flush()
                ended_line = text.endswith("\n")
            if not ended_line:
                sys.stdout.write("\n")

    run(go())


def _json(value: object) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except TypeError:  # a value with map keys JSON can't have
        return msgspec.json.encode(plain(value)).decode()
