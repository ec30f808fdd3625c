"""`durable history export RUN_ID -o FILE`: a run's history as a lossless, readable JSON file.

The file (format in durable/_history.py) replays offline with `durable replay --history FILE`,
and is what tests/golden holds."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from durable._codec import decode_value
from durable._errors import ErrorInfo, RunNotFoundError
from durable._events import decode_record
from durable._history import ExportedEvent, ExportedRun, HistoryFile, dumps
from durable._views import event_view, plain
from durable.cli._app import CLIError, DurableGroup, chosen_url, cli, db_option, reading, run
from durable.cli._escape import escape_controls
from storage import EventRecord, RunRecord


@cli.group(cls=DurableGroup)
def history() -> None:
    """Export a run's history to a file (replay it with `durable replay --history`)."""


@history.command("export")
@click.argument("run_id")
@click.option(
    "-o",
    "--output",
    "output",
    metavar="FILE",
    default="-",
    show_default=True,
    help="Where to write the JSON file ('-' for stdout).",
)
@db_option
@click.pass_context
def export_cmd(ctx: click.Context, run_id: str, output: str, db: str | None) -> None:
    """Write the run's row facts and every event (stored bytes and a decoded rendering)."""

    async def go() -> tuple[RunRecord, list[EventRecord]]:
        async with reading(chosen_url(ctx, db)) as engine:
            record = await engine.store.get_run(run_id)
            if record is None:
                raise RunNotFoundError(run_id)
            return record, await engine.store.read_events(run_id)

    record, records = run(go())
    data = dumps(history_file(record, records))
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise CLIError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(escape_controls(f"exported run {run_id} ({len(records)} events) to {output}"))


def history_file(record: RunRecord, records: list[EventRecord]) -> HistoryFile:
    """The export of one run. Every event is decoded first, so a damaged log is refused here
    (CorruptEventError) rather than exported as a file that cannot be replayed."""
    events = []
    for stored in records:
        view = event_view(decode_record(stored))
        events.append(
            ExportedEvent(
                seq=stored.seq,
                at=stored.created_at,
                type=stored.type,
                data=stored.data,
                time=_iso(stored.created_at),
                decoded={k: plain(v) for k, v in view.fields.items()},
            )
        )
    run_facts = ExportedRun(
        run_id=record.run_id,
        workflow=record.workflow,
        version=record.version,
        status=record.status,
        parent_run_id=record.parent_run_id,
        created_at=record.created_at,
        finished_at=record.finished_at,
        last_seq=record.last_seq,
        input=_decoded(record.input),
        result=_decoded(record.result),
        error=_error(record.error),
        raw_input=record.input,
        raw_result=record.result,
        raw_error=record.error,
    )
    return HistoryFile(exported_by=_exporter(), run=run_facts, events=events)


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def _decoded(data: bytes | None) -> Any:
    return None if data is None else plain(decode_value(data))


def _error(data: bytes | None) -> Any:
    return None if data is None else plain(decode_value(data, ErrorInfo))


def _exporter() -> str:
    # importlib.metadata costs ~15 ms to import: only when a history is exported.
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return f"durable {package_version('durable')}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "durable"
