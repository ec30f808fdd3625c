"""`durable runs update RUN NAME`: send an update to a run and print its answer (the worker
executing the run validates it and runs the handler: no --app needed here)."""

from __future__ import annotations

import uuid
from typing import Any

import click
import msgspec

from durable._errors import RunNotFoundError, UpdateFailed, UpdateRejected
from durable.cli._app import CLIError, chosen_url, db_option, reading, run
from durable.cli._escape import escape_controls
from durable.cli._runs import runs

_TIMED_OUT = 3  # as `durable wait`


@runs.command("update")
@click.argument("run_id")
@click.argument("name")
@click.option(
    "--args", "args_json", metavar="JSON", default="[]", help="The arguments, a JSON list."
)
@click.option(
    "--id",
    "update_id",
    metavar="ID",
    help="The update's id: the same id never runs twice, so a retry with it is safe "
    "(default: a new one, printed).",
)
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    metavar="S",
    help="Seconds to wait for the answer; the update goes on after them.",
)
@db_option
@click.pass_context
def update(
    ctx: click.Context,
    run_id: str,
    name: str,
    args_json: str,
    update_id: str | None,
    timeout: float,
    db: str | None,
) -> None:
    """Send update NAME to run RUN_ID (its handler: ctx.on_update(NAME, ...)) and print the
    handler's result as JSON. Exits 1 if the update was rejected (its validator raised, no
    such handler, the run ended) or the handler raised, 3 if no answer came in time (as
    `durable wait`), 2 on bad arguments or an unknown run."""
    try:
        args: Any = msgspec.json.decode(args_json)
    except msgspec.DecodeError as exc:
        raise CLIError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(args, list):
        raise CLIError(
            f"--args must be a JSON list of arguments, e.g. '[1, \"a\"]', not {args_json}"
        )
    if timeout <= 0:
        raise CLIError("--timeout must be > 0 seconds")
    uid = update_id if update_id is not None else uuid.uuid4().hex
    answer: list[Any] = []

    async def go() -> None:
        async with reading(chosen_url(ctx, db)) as engine:
            answer.append(
                await engine.client.update(run_id, name, *args, update_id=uid, timeout=timeout)
            )

    try:
        run(go())
    except (UpdateRejected, UpdateFailed) as exc:  # an answer, not a usage error
        click.echo(escape_controls(f"error: {exc}"), err=True)
        ctx.exit(1)
    except TimeoutError as exc:
        click.echo(escape_controls(f"error: {exc}"), err=True)
        ctx.exit(_TIMED_OUT)
    except (RunNotFoundError, ValueError, TypeError, LookupError) as exc:
        raise CLIError(str(exc)) from None
    click.echo(msgspec.json.encode(answer[0]).decode())
