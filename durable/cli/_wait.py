"""`durable wait RUN_ID`: block until a run has finished, then say how it ended.

Scripts need it between acting on a run and reading its outcome (signal, then wait, then fork),
and so do the README's command blocks. It only reads: the run is executed by whatever worker
holds it, in this process or another.
"""

from __future__ import annotations

import asyncio

import click

from durable._errors import RunNotFoundError
from durable.cli._app import CLIError, chosen_url, cli, db_option, reading, run
from durable.cli._escape import escape_controls

# Exit statuses, as `durable run`'s: 0 succeeded, 1 ended otherwise, 2 a user error.
_TIMED_OUT = 3


@cli.command("wait")
@click.argument("run_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Give up after S seconds (exit status 3); default: wait as long as it takes.",
)
@db_option
@click.pass_context
def wait(ctx: click.Context, run_id: str, timeout: float | None, db: str | None) -> None:
    """Wait until run RUN_ID has finished and print its status. Exit status: 0 succeeded,
    1 failed, partial or cancelled, 2 unknown run, 3 still unfinished after --timeout."""

    async def go() -> str:
        async with reading(chosen_url(ctx, db)) as engine:
            outcome = await asyncio.wait_for(engine.client.wait(run_id), timeout)
            return outcome.status

    try:
        status = run(go())
    except RunNotFoundError as exc:
        raise CLIError(str(exc)) from None
    except TimeoutError:
        click.echo(escape_controls(f"run {run_id} has not finished after {timeout:g} s"), err=True)
        ctx.exit(_TIMED_OUT)
    click.echo(escape_controls(f"run {run_id} {status}"))
    ctx.exit(0 if status == "succeeded" else 1)
