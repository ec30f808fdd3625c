"""`durable complete TOKEN [RESULT_JSON]` and `durable fail TOKEN MESSAGE`: settle an external
wait (ctx.wait_external) from a shell, exactly once (see durable.interact._external)."""

from __future__ import annotations

from typing import Any

import click
import msgspec

from durable._errors import ExternalAlreadySettledError, InvalidTokenError
from durable.cli._app import CLIError, chosen_url, cli, db_option, reading, run
from durable.cli._escape import escape_controls


@cli.command("complete")
@click.argument("token")
@click.argument("result", required=False, default="null", metavar="[RESULT_JSON]")
@db_option
@click.pass_context
def complete(ctx: click.Context, token: str, result: str, db: str | None) -> None:
    """Complete the external wait TOKEN names (ctx.wait_external(...).token): the workflow's
    await returns RESULT_JSON (default null). Fails if it was already completed, failed or
    timed out: a completion counts once."""
    try:
        value: Any = msgspec.json.decode(result)
    except msgspec.DecodeError as exc:
        raise CLIError(
            f"RESULT_JSON is not valid JSON: {exc} (quote it for the shell: '{{\"ok\": true}}')"
        ) from None

    async def go() -> None:
        async with reading(chosen_url(ctx, db)) as engine:
            await engine.client.complete(token, value)

    _settling(go)
    click.echo("external wait completed")


@cli.command("fail")
@click.argument("token")
@click.argument("message")
@click.option(
    "--type", "type_", metavar="TYPE", help="The error's type (ExternalFailed.error.type)."
)
@db_option
@click.pass_context
def fail(ctx: click.Context, token: str, message: str, type_: str | None, db: str | None) -> None:
    """Fail the external wait TOKEN names: the workflow's await raises ExternalFailed with
    MESSAGE. Fails if it was already completed, failed or timed out."""

    async def go() -> None:
        async with reading(chosen_url(ctx, db)) as engine:
            await engine.client.fail(token, message, type=type_)

    _settling(go)
    click.echo("external wait failed")


def _settling(go: Any) -> None:
    try:
        run(go())
    except (InvalidTokenError, ExternalAlreadySettledError, ValueError) as exc:
        raise CLIError(escape_controls(str(exc))) from None
