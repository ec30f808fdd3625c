"""`durable fork` and `durable retry`: run again what went wrong, reusing what went right.

Both only write to the database (a new run with a copied history, or a reopened run); a worker
that has the workflow's version executes them, as it does any run.
"""

from __future__ import annotations

import click

from durable._registry import Registry
from durable._repair_ops import fork_run, retry_run
from durable.cli._app import chosen_url, cli, db_option, reading, run, with_app
from durable.cli._escape import escape_controls


@cli.command("fork")
@click.argument("run_id")
@click.option(
    "--from-step",
    "from_step",
    required=True,
    metavar="N",
    help="Re-execute from this position (as `durable runs show` numbers steps) or from the "
    "first position of the step with this name; everything before it is reused.",
)
@click.option(
    "--app",
    "app_path",
    required=True,
    metavar="MODULE:APP",
    help="The application with the workflow's code: the reused history is replayed against "
    "it before the fork is created.",
)
@click.option("--version", "version", metavar="V", help="Run the fork on this version.")
@click.option("--run-id", "new_run_id", metavar="ID", help="The fork's run id (default: new).")
@db_option
@click.pass_context
def fork(
    ctx: click.Context,
    run_id: str,
    from_step: str,
    app_path: str,
    version: str | None,
    new_run_id: str | None,
    db: str | None,
) -> None:
    """Create a new run of finished run RUN_ID's workflow, on the same input, that reuses
    its recorded results before step N and executes from N on (e.g. after fixing a bug).
    A worker with the workflow's version executes it."""
    url, registry, _ = with_app(ctx, db, app_path)

    async def go() -> tuple[str, str, int]:
        async with reading(url, registry) as engine:
            rid, wf, pos = await fork_run(
                engine.store, registry, run_id, from_step, version=version, run_id=new_run_id
            )
            return rid, f"{wf.name}@{wf.version}", pos

    rid, workflow, pos = run(go())
    click.echo(escape_controls(f"run {rid} forked from {run_id} at position {pos} ({workflow})"))


@cli.command("retry")
@click.argument("run_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="A new deadline for the run, from now (a retry drops the old one).",
)
@db_option
@click.pass_context
def retry(ctx: click.Context, run_id: str, timeout: float | None, db: str | None) -> None:
    """Resume failed or cancelled run RUN_ID in place from where it ended: the steps it
    failed on get new attempts, its failed (or cancelled) child runs are retried too, a
    cancelled run waits again where its cancellation reached it, and everything it completed
    stays done. A worker with the run's version continues it."""

    async def go() -> list[tuple[str, str]]:
        async with reading(chosen_url(ctx, db), Registry()) as engine:
            return await retry_run(engine.store, run_id, timeout=timeout)

    for rid, what in run(go()):
        kind = "run" if rid == run_id else "child run"
        click.echo(escape_controls(f"{kind} {rid} resumed: {what}"))
