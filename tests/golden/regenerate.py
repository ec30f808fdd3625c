"""Write the golden histories: `python tests/golden/regenerate.py` from the repository root.

Each run in workflows.GOLDEN_RUNS is executed in a fresh SQLite database and exported with the
real `durable history export` command; then the one machine-specific thing in them, the
absolute paths inside recorded tracebacks, is made relative, so the files are the same on every
machine. Timestamps and ctx.now()/random()/uuid4() values stay as recorded: replay reads them
back, it never compares them to anything.

Regenerate only to add a workflow. A golden file that stops replaying means the engine broke
compatibility with old histories: fix the engine, not the file.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from durable._errors import ErrorInfo  # noqa: E402  (after the path set-up above)
from durable._events import LoggedEvent, decode_record, encode_event  # noqa: E402
from durable._history import HistoryFile, dumps, read  # noqa: E402
from durable.cli._render import event_view, plain  # noqa: E402
from golden.workflows import GOLDEN_RUNS, make_app  # noqa: E402

_FILE = re.compile(r'File "([^"]+)"')


def relative(path: str) -> str:
    """A traceback's file as a path that means the same on any machine."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.relative_to(REPO).as_posix()
        except ValueError:
            return "<python>/" + "/".join(p.parts[-2:])  # the stdlib or site-packages
    return path


def scrub_error(error: ErrorInfo) -> ErrorInfo:
    traceback = _FILE.sub(lambda m: f'File "{relative(m.group(1))}"', error.traceback)
    return msgspec.structs.replace(error, traceback=traceback)


def scrub(history: HistoryFile) -> HistoryFile:
    events = []
    for exported, record in zip(history.events, history.records(), strict=True):
        event = decode_record(record).event
        changes = {
            name: scrub_error(value)
            for name in event.__struct_fields__
            if isinstance(value := getattr(event, name), ErrorInfo)
        }
        event = msgspec.structs.replace(event, **changes)
        view = event_view(LoggedEvent(record.run_id, record.seq, record.created_at, event))
        decoded = {k: plain(v) for k, v in view.fields.items()}
        events.append(msgspec.structs.replace(exported, data=encode_event(event), decoded=decoded))
    run = history.run
    if run.raw_error is not None:
        error = scrub_error(msgspec.msgpack.decode(run.raw_error, type=ErrorInfo))
        run = msgspec.structs.replace(
            run, raw_error=msgspec.msgpack.encode(error), error=plain(error)
        )
    return msgspec.structs.replace(history, run=run, events=events)


async def execute(url: str) -> None:
    async with make_app(url) as app:
        for run_id, (workflow, arg) in GOLDEN_RUNS.items():
            await app.run(workflow, arg, run_id=run_id)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/golden.db"
        asyncio.run(execute(url))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
        for run_id in GOLDEN_RUNS:
            exported = Path(tmp) / f"{run_id}.json"
            command = ["history", "export", run_id, "-o", str(exported), "--db", url]
            subprocess.run([sys.executable, "-m", "durable", *command], check=True, env=env)
            target = HERE / f"{run_id.removeprefix('golden-')}.json"
            target.write_bytes(dumps(scrub(read(exported))))
            print(f"wrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
