"""Write the golden histories: `python tests/golden/regenerate.py` from the repository root.

Each run in workflows.GOLDEN_RUNS is executed in a fresh SQLite database and exported with the
real `durable history export` command; then the one machine-specific thing in them, the
absolute paths inside recorded tracebacks, is made relative, so the files are the same on every
machine. Timestamps and ctx.now()/random()/uuid4() values stay as recorded: replay reads them
back, it never compares them to anything.

Only the runs whose golden file does not exist yet are executed and written: the files already
checked in are never rewritten (their recorded timestamps and values would all change). Add a
workflow to GOLDEN_RUNS and run this script; to remake a file on purpose, delete it first (a
child run's file is remade with its parent's). A run's signals (GOLDEN_SIGNALS) are sent while
it runs, and the child runs it started are exported next to it: the parent's own log holds
every child's outcome, so replaying it needs only its file; the children's files let their own
histories be replayed too.

A golden file that stops replaying means the engine broke compatibility with old histories: fix
the engine, not the file.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from durable._events import (  # noqa: E402
    ChildStarted,
    LoggedEvent,
    WaitStarted,
    decode_record,
    encode_event,
)
from durable._history import HistoryFile, dumps, read  # noqa: E402
from durable._views import event_view, plain  # noqa: E402
from golden.workflows import (  # noqa: E402
    GOLDEN_CANCELLED_WAITING,
    GOLDEN_QUEUE,
    GOLDEN_RUNS,
    GOLDEN_SIGNALS,
    GOLDEN_UPDATES,
    make_app,
)
from sdk import App, UpdateRejected  # noqa: E402

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


def target(run_id: str) -> Path:
    return HERE / f"{run_id.removeprefix('golden-')}.json"


async def waiting(app: App, run_id: str, waits: int) -> None:
    """Until the run's log holds `waits` WaitStarted events."""
    for _ in range(600):
        events = await app.events(run_id)
        if sum(isinstance(e.event, WaitStarted) for e in events) >= waits:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{run_id} never reached its wait #{waits}")


async def execute(url: str, runs: list[str]) -> None:
    async with make_app(url) as app:
        for run_id in runs:
            workflow, arg = GOLDEN_RUNS[run_id]
            signals = GOLDEN_SIGNALS.get(run_id)
            reason = GOLDEN_CANCELLED_WAITING.get(run_id)
            if reason is not None:
                await app.start(workflow, arg, run_id=run_id, queue=GOLDEN_QUEUE, delay=3600)
                await app.cancel(run_id, reason)
                continue
            updates = GOLDEN_UPDATES.get(run_id)
            if updates:
                handle = await app.start(workflow, arg, run_id=run_id)
                for name, args in updates:
                    with contextlib.suppress(UpdateRejected):
                        await app.update(run_id, name, *args, update_id=f"{name}-{args}")
                await app.signal(run_id, "close")
                await handle.result(60)
                continue
            if not signals:
                await app.run(workflow, arg, run_id=run_id)
                continue
            handle = await app.start(workflow, arg, run_id=run_id)
            for waits, name, payload in signals:
                await waiting(app, run_id, waits)
                await app.signal(run_id, name, payload)
            await handle.result(60)


def export(run_id: str, url: str, tmp: str) -> list[str]:
    """Write the run's golden file; return the child runs it started."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    exported = Path(tmp) / f"{run_id}.json"
    command = ["history", "export", run_id, "-o", str(exported), "--db", url]
    subprocess.run([sys.executable, "-m", "durable", *command], check=True, env=env)
    history = read(exported)
    target(run_id).write_bytes(dumps(scrub(history)))
    print(f"wrote {target(run_id).relative_to(REPO)}")
    return [e.event.run_id for e in history.logged() if isinstance(e.event, ChildStarted)]


def main() -> None:
    runs = [run_id for run_id in GOLDEN_RUNS if not target(run_id).exists()]
    for run_id in GOLDEN_RUNS:
        if run_id not in runs:
            print(f"kept {target(run_id).relative_to(REPO)} (delete it to remake it)")
    if not runs:
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/golden.db"
        asyncio.run(execute(url, runs))
        while runs:
            runs.extend(export(runs.pop(0), url, tmp))


if __name__ == "__main__":
    main()
