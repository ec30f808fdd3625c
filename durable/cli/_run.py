"""`durable run FILE`: execute a YAML/JSON DAG definition in this process, wait for its end and
print a summary; `--run-id` makes the command resumable after a crash or a stop signal."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from durable._engine import URL_ENV, Engine
from durable._errors import WorkflowDefinitionError
from durable._events import RunStarted
from durable._loader import load_app
from durable._options import WorkerOptions
from durable.cli._app import CLIError, chosen_url, cli, db_option, emit_json, run
from durable.cli._follow import Follower
from durable.cli._policy import apply_policy, policy_options
from durable.cli._render import duration, make_console, status_text
from durable.cli._validate import load_or_exit, plan_report, print_plan, report_problems
from durable.cli._worker import POSITIVE, STOP_SIGNALS, _exit_now, _wait_for_step_threads
from durable.dag import DagDefinition, DagProgram, DagResult
from durable.runtime._registry import Registry

NOT_SUCCEEDED = 1


@dataclasses.dataclass(slots=True)
class _Job:
    """What one invocation runs, resolved from the options before anything is opened."""

    url: str | None
    registry: Registry
    options: WorkerOptions
    definition: DagDefinition
    input: Any
    run_id: str
    parallelism: int | None
    follow: bool
    out: Console  # where progress goes: stdout, or stderr when stdout carries --json


@cli.command("run", short_help="Run a YAML/JSON DAG definition and wait for its end.")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--input", "input_text", metavar="JSON", help="The run's input, as JSON.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; run nothing.")
@click.option(
    "--output", type=click.Path(dir_okay=False), help="Write the result (DagResult) as JSON."
)
@click.option(
    "--parallelism", type=click.IntRange(min=1), metavar="N", help="Steps running at once."
)
@click.option("--follow", is_flag=True, help="Show steps starting and finishing live.")
@click.option("--run-id", metavar="ID", help="Run id: the same id resumes the same run.")
@db_option
@click.option("--app", "app_path", metavar="MODULE:APP", help="Application with custom actions.")
@click.option("--lease-ttl", type=POSITIVE, metavar="S", help="Lease duration in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (or plan) as JSON.")
@policy_options
@click.pass_context
def run_command(
    ctx: click.Context,
    file: str,
    input_text: str | None,
    dry_run: bool,
    output: str | None,
    parallelism: int | None,
    follow: bool,
    run_id: str | None,
    db: str | None,
    app_path: str | None,
    lease_ttl: float | None,
    as_json: bool,
    allow_module: tuple[str, ...],
    expose_env: tuple[str, ...],
) -> None:
    """Run the workflow defined in FILE (YAML or JSON) to its end in this process.

    Prints the run id, then a summary: status, counts, duration, every step. Exit status:
    0 succeeded, 1 partial or failed, 2 a user error (bad definition, input or options),
    130/143 stopped by SIGINT/SIGTERM (leases given back: the same command with --run-id
    resumes the run; steps that completed do not run again)."""
    event = _parse_input(input_text)
    app = load_app(app_path) if app_path else None
    registry = app.registry if app is not None else Registry()
    apply_policy(registry, allow_module, expose_env)
    # Custom actions (and queues) must be known before the file is checked: they are the app's.
    definition = load_or_exit(file, registry.actions, as_json=as_json, queues=registry.queues)
    # So are the functions `function:` steps may call: refused before anything runs.
    refused = registry.function_problems(definition)
    if refused:
        report_problems(file, [str(p) for p in refused], as_json=as_json)
    if dry_run:
        report = plan_report(file, definition)
        if as_json:
            emit_json(report)
        else:
            print_plan(report, definition)
        return
    try:
        registry.add_dag(DagProgram(definition))
    except WorkflowDefinitionError as exc:
        raise CLIError(f"{file}: {exc}") from None
    options = app.worker_options if app is not None else WorkerOptions()
    if lease_ttl is not None:
        options = dataclasses.replace(options, lease_ttl=lease_ttl)
    if options.owner is None:
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        options = dataclasses.replace(options, owner=owner)
    # The operator's choice (--db, then the environment) beats the URL written in the app.
    url = chosen_url(ctx, db) or os.environ.get(URL_ENV) or (app.database_url if app else None)
    job = _Job(
        url=url,
        registry=registry,
        options=options,
        definition=definition,
        input=event,
        run_id=run_id or uuid.uuid4().hex,
        parallelism=parallelism,
        follow=follow,
        out=make_console(stderr=as_json),
    )
    result, signum = run(_execute(job, file))
    if result is None:
        _wait_for_step_threads()
        name = signal.Signals(signum).name
        click.echo(
            f"{name}: stopped; run {job.run_id} is unfinished and its leases are released: "
            f"the same command with --run-id {job.run_id} resumes it",
            err=True,
        )
        sys.exit(128 + signum)
    if output is not None:
        _write_output(output, result)
    if as_json:
        emit_json(result)
    else:
        _print_summary(job.out, result)
    sys.exit(0 if result.succeeded else NOT_SUCCEEDED)


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # json names the line and column; msgspec only a byte offset.
        raise CLIError(
            f"--input is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None


def _write_output(path: str, result: DagResult) -> None:
    try:
        Path(path).write_bytes(msgspec.json.encode(result) + b"\n")
    except OSError as exc:
        raise CLIError(f"cannot write --output {path}: {exc.strerror or exc}") from None


async def _execute(job: _Job, file: str) -> tuple[DagResult | None, int]:
    """Run (or resume) the run; (its result, 0), or (None, signal) if a signal stopped it."""
    engine = Engine(job.url, job.registry, options=job.options, schedules=False)
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopped.done():  # a second signal: the leases are already being given back
            _exit_now(128 + signum)
        stopped.set_result(signum)

    # Installed before opening, so a signal during start-up still shuts down cleanly.
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await engine.open()
        try:
            await _check_resumable(engine, job, file)
            definition = job.definition
            # The file's definition is stored nowhere else: the run keeps it (visualize).
            await engine.client.start(
                definition.name,
                job.input,
                run_id=job.run_id,
                parallelism=job.parallelism,
                record_definition=True,
            )
            job.out.print(
                Text(f"run {job.run_id} ({definition.name}@{definition.version}) on {engine.url}")
            )
            waiting: Coroutine[Any, Any, object]
            if job.follow:
                waiting = Follower(job.out).follow(engine.client.watch(job.run_id))
            else:
                waiting = engine.client.wait(job.run_id)
            task: asyncio.Future[Any] = asyncio.ensure_future(waiting)
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return None, stopped.result()
            task.result()  # a storage error while waiting is the command's error
            return await engine.client.dag_result(job.run_id), 0
        finally:
            await engine.close()  # the worker stops and gives its leases back
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _check_resumable(engine: Engine, job: _Job, file: str) -> None:
    """An existing run id continues that run, but only under the definition it started with:
    the engine does not compare fingerprints, and a changed file would resume an old log
    with new steps."""
    events = await engine.store.read_events(job.run_id, 0)
    if not events:
        return
    first = msgspec.msgpack.decode(events[0].data, type=RunStarted)
    definition = job.definition
    if first.workflow != definition.name:
        return  # the client's start reports the conflict
    if first.version != definition.version or first.fingerprint != definition.fingerprint():
        raise CLIError(
            f"run {job.run_id!r} was started from a different definition of "
            f"{first.workflow!r} (version {first.version}, fingerprint {first.fingerprint[:12]}); "
            f"{file} is version {definition.version}, fingerprint "
            f"{definition.fingerprint()[:12]}: resume it with the file it started with, or "
            "choose another --run-id"
        )
    if job.parallelism is not None and job.parallelism != first.parallelism:
        job.out.print(
            Text(
                f"note: run {job.run_id} keeps the parallelism it started with "
                f"({first.parallelism or 'uncapped'}); --parallelism is ignored",
                style="yellow",
            )
        )


def _print_summary(console: Console, result: DagResult) -> None:
    head = Text(f"run {result.run_id} ({result.workflow}@{result.version}): ")
    head.append_text(status_text(result.status))
    head.append(
        f" — {result.completed_count}/{result.total_count} completed, "
        f"{result.failed_count} failed, {result.skipped_count} skipped, "
    )
    if result.notifications_failed:
        n = result.notifications_failed
        head.append(f"{n} notification{'' if n == 1 else 's'} failed, ", style="red")
    head.append_text(duration(result.duration_seconds))
    console.print(head)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("step", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("error")
    for step in result.steps.values():
        label = step.id if not step.instances else f"{step.id} ×{len(step.instances)}"
        if step.error is not None:
            note = Text(" ".join(step.error.split()), style="red")
        elif step.skip_reason is not None:
            note = Text(step.skip_reason, style="dim")
        else:
            note = Text("")
        table.add_row(
            Text(label),
            status_text(step.status),
            str(step.attempts),
            duration(step.duration_seconds),
            note,
        )
    console.print(table)
    for sent in result.notifications:
        if sent.status == "failed":
            console.print(
                Text(
                    f"notification failed: {sent.name} ({sent.channel}): "
                    + " ".join((sent.error or "").split()),
                    style="red",
                )
            )
    if result.error is not None and result.status == "failed":
        console.print(Text(result.error, style="red"))
