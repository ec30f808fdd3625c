"""A real SQLite file, damaged or unusual, seen through every reader: the library, the CLI.

- One byte of one event's payload flipped on disk: every read that includes the event (get_run,
  watch, events, replay, `durable events`, `durable runs show`) fails with one clear line naming
  the run and the event; listing runs still works; nothing rewrites the damaged row.
- A file that is not a durable database (empty, another application's) is refused by reading
  commands, never turned into one.
- A read-only file (permissions that really apply: the commands run as an unprivileged user when
  the tests run as root) can be read; a command that must write says why it can't.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cirules import unavailable

from sdk import App
from storage import EventChecksumError

WORKFLOWS = """
from sdk import App, Context

app = App("sqlite:///unused.db")

@app.step()
async def double(n: int) -> int:
    return 2 * n

@app.workflow()
async def twice(ctx: Context, n: int) -> int:
    return await double(await double(n))

@app.workflow()
async def idle(ctx: Context) -> None:
    await ctx.wait_for_signal("go")
"""

ROOT = Path(__file__).resolve().parents[1]


def write_module(where: Path) -> None:
    (where / "wfmod.py").write_text(textwrap.dedent(WORKFLOWS))


def durable_cli(
    where: Path, *args: str, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "durable", *args]
    if unprivileged and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            unavailable("running as root without setpriv: cannot drop the right to write")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{where}"}
    env.pop("DURABLE_DATABASE_URL", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=where, env=env)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def load_module(where: Path) -> App:
    sys.path.insert(0, str(where))
    # Another test's module of the same name may still be imported (tests/versions loads a
    # `wfmod` too): this one's file, not that cached module.
    sys.modules.pop("wfmod", None)
    importlib.invalidate_caches()
    try:
        app: App = importlib.import_module("wfmod").app
        return app
    finally:
        sys.path.remove(str(where))
        sys.modules.pop("wfmod", None)


async def finished_run(path: Path, where: Path) -> tuple[App, str]:
    write_module(where)
    module_app = load_module(where)
    app = App(f"sqlite:///{path}", poll_interval=0.05)
    app.registry._workflows.update(module_app.registry._workflows)
    app.registry._steps.update(module_app.registry._steps)
    async with app:
        handle = await app.start("twice", 5, run_id="flip")
        assert await handle.result(timeout=30) == 20
    return app, handle.run_id


def flip_a_byte(path: Path, run_id: str, seq: int) -> bytes:
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute(
            "SELECT data FROM durable_events WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        # The last byte of a StepCompleted is its result (msgpack 10 here): flipping its low
        # bit leaves a payload that still decodes, to a result the step never returned.
        changed = bytearray(data)
        changed[-1] ^= 0x01
        conn.execute(
            "UPDATE durable_events SET data = ? WHERE run_id = ? AND seq = ?",
            (bytes(changed), run_id, seq),
        )
    return bytes(changed)


async def test_a_flipped_byte_in_an_event_fails_every_reader_clearly(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    app, run_id = await finished_run(path, tmp_path)
    changed = flip_a_byte(path, run_id, 3)
    assert changed.endswith(b"result\x0b")  # 10 became 11, and msgpack can't tell

    async with app:
        damaged = rf"^run '{run_id}': event #3 \(\w+\) in .* is damaged"
        with pytest.raises(EventChecksumError, match=damaged) as caught:
            await app.get_run(run_id)
        assert (caught.value.run_id, caught.value.seq) == (run_id, 3)
        with pytest.raises(EventChecksumError, match=damaged):
            await app.events(run_id)
        with pytest.raises(EventChecksumError, match=damaged):
            async for _ in app.watch(run_id):
                pass
        assert [r.run_id for r in await app.list_runs()] == [run_id]  # the row still reads

    db = ["--db", str(path)]
    for args in (
        ["events", run_id],
        ["runs", "show", run_id],
        ["replay", run_id, "--app", "wfmod:app"],
    ):
        line = one_error_line(await asyncio.to_thread(durable_cli, tmp_path, *args, *db))
        assert f"run {run_id!r}: event #3" in line and "damaged" in line, (args, line)
        assert "backup" in line
    listed = await asyncio.to_thread(durable_cli, tmp_path, "runs", "list", "--json", *db)
    assert listed.returncode == 0 and run_id in listed.stdout

    with sqlite3.connect(path) as conn:  # left exactly as found
        (data,) = conn.execute(
            "SELECT data FROM durable_events WHERE run_id = ? AND seq = 3", (run_id,)
        ).fetchone()
    assert data == changed


def test_reading_commands_refuse_what_is_not_a_durable_database(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    line = one_error_line(durable_cli(tmp_path, "runs", "list", "--db", str(empty)))
    assert f"no database at {empty} (the file is empty)" in line
    assert empty.read_bytes() == b""

    other = tmp_path / "shop.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    before = other.read_bytes()
    for args in (["runs", "list"], ["events", "x"]):
        line = one_error_line(durable_cli(tmp_path, *args, "--db", str(other)))
        assert str(other) in line and "not a durable database" in line and "orders" in line
    assert other.read_bytes() == before


@pytest.mark.parametrize("how", ["read-only file", "read-only directory"])
def test_a_read_only_database_can_be_read_by_the_cli(tmp_path: Path, how: str) -> None:
    # pytest's base directory is root's alone: the unprivileged user needs a path it can reach.
    where = Path("/tmp") / f"durable-ro-cli-{os.getpid()}-{tmp_path.name}"
    where.mkdir()
    where.chmod(0o777)
    try:
        path = where / "d.db"
        write_module(where)
        app = App(f"sqlite:///{path}", worker=False)
        app.registry._workflows.update(load_module(where).registry._workflows)

        async def start() -> str:
            async with app:
                return (await app.start("idle", run_id="ro-run")).run_id

        run_id = asyncio.run(start())
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for extra in ("-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        if how == "read-only file":
            path.chmod(0o444)
        else:
            path.chmod(0o666)
            where.chmod(0o555)
        # The permissions really apply to the user the commands run as.
        probe = durable_cli(
            where, "runs", "list", "--db", "sqlite:////nonexistent/x.db", unprivileged=True
        )
        assert probe.returncode == 2
        proof = subprocess.run(
            [
                *(
                    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                    if os.geteuid() == 0
                    else []
                ),
                sys.executable,
                "-c",
                "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("
                "'DELETE FROM durable_workers').connection.commit()",
                str(path),
            ],
            capture_output=True,
            text=True,
        )
        assert proof.returncode != 0 and "readonly" in proof.stderr.replace("-", ""), proof

        for args in (["runs", "list"], ["runs", "show", run_id], ["events", run_id]):
            done = durable_cli(where, *args, "--json", "--db", str(path), unprivileged=True)
            assert done.returncode == 0, (args, done.stderr)
            assert run_id in done.stdout or '"RunStarted"' in done.stdout
        cancel = durable_cli(where, "cancel", run_id, "--db", str(path), unprivileged=True)
        line = one_error_line(cancel)
        assert f"cannot write to SQLite database {path}" in line and "read-only" in line
        # A worker writes every step: it is refused at start, not left failing every poll.
        worker = durable_cli(where, "worker", "wfmod:app", "--db", str(path), unprivileged=True)
        line = one_error_line(worker)
        assert "cannot run a worker" in line and "read-only" in line
    finally:
        where.chmod(0o777)
        shutil.rmtree(where)
