"""What opening a SQLite path does with what it finds there: a new or empty file is initialized;
a durable database is used with plain reads (no lock, no DDL); anything else is refused with
DatabaseOpenError naming the file and what is wrong, and left untouched. And what a write does
when another process holds the write lock: it waits, says so after a second, and gives up with a
clear error at its timeout."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cirules import unavailable
from storekit import T0, append, create, event, new_run
from test_sqlite_locking import write_lock_held

from storage import (
    DatabaseOpenError,
    DatabaseUnavailableError,
    DatabaseURLError,
    SQLiteStore,
    open_store,
)
from storage._schema import SCHEMA_VERSION, metadata
from storage._schema_version import TABLES
from storage._sqlite_lock import CLOSING_GRACE

ROOT = Path(__file__).resolve().parents[2]


async def make_db(path: Path) -> None:
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await create(store, "r1")
        await store.append(append("r1", 1))
    finally:
        await store.close()


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def checkpointed(path: Path) -> bytes:
    """The file's bytes with everything in it (nothing left in the -wal)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


# ------------------------------------------------------------------------ what a path holds


async def test_the_schema_tables_listed_for_the_plain_read_are_the_schema() -> None:
    assert set(TABLES) == {t.name for t in metadata.sorted_tables}


@pytest.mark.parametrize("content", [b"", None], ids=["zero-byte file", "SQLite without tables"])
async def test_an_empty_file_is_initialized(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "empty.db"
    if content is None:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 7")  # a real SQLite file, with no table
        assert path.stat().st_size > 0
    else:
        path.write_bytes(content)
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await create(store, "r")
        assert [e.seq for e in await store.read_events("r")] == [1]
    finally:
        await store.close()


async def test_random_bytes_are_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "noise.db"
    content = os.urandom(8192)
    path.write_bytes(content)
    with pytest.raises(DatabaseOpenError, match="not a SQLite database") as info:
        await SQLiteStore(str(path)).open()
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert files_in(tmp_path) == ["noise.db"]  # no -wal, no -shm


async def test_a_file_shorter_than_sqlites_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.db"
    path.write_bytes(b"SQLite")
    with pytest.raises(DatabaseOpenError, match="not a SQLite database"):
        await SQLiteStore(str(path)).open()
    assert path.read_bytes() == b"SQLite"


@pytest.mark.parametrize("keep", [100, 4096, -4096], ids=["header", "first page", "last page"])
async def test_a_truncated_database_is_refused_as_damaged(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.db"
    await make_db(path)
    whole = checkpointed(path)
    cut = whole[:keep]
    path.write_bytes(cut)
    with pytest.raises(DatabaseOpenError, match="damaged") as info:
        await SQLiteStore(str(path)).open()
    message = str(info.value)
    assert str(path) in message and "backup" in message
    assert path.read_bytes() == cut


async def test_another_applications_database_is_refused_and_left_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER)")
        conn.execute("INSERT INTO customers VALUES (1, 'Ada')")
    before = path.read_bytes()
    with pytest.raises(DatabaseOpenError, match="not a durable database") as info:
        await SQLiteStore(str(path)).open()
    message = str(info.value)
    assert str(path) in message and "customers" in message and "orders" in message
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"customers", "orders"}


async def test_a_durable_database_missing_its_version_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    await make_db(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM durable_schema")
    with pytest.raises(DatabaseOpenError, match="damaged") as info:
        await SQLiteStore(str(path)).open()
    assert "schema version" in str(info.value)


async def test_a_durable_database_missing_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    await make_db(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE durable_events")
    with pytest.raises(DatabaseOpenError, match="damaged") as info:
        await SQLiteStore(str(path)).open()
    assert "durable_events" in str(info.value)


async def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseOpenError, match="is a directory"):
        await SQLiteStore(str(tmp_path)).open()


# ------------------------------------------------------------------- another process's lock


async def test_opening_and_reading_never_wait_for_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    await make_db(path)
    with write_lock_held(path):
        started = time.monotonic()
        store = SQLiteStore(str(path))
        await store.open()
        try:
            assert [e.seq for e in await store.read_events("r1")] == [1, 2]
            run = await store.get_run("r1")
            assert run is not None and run.last_seq == 2
            assert await store.count_definitions() == 0
        finally:
            await store.close()
        assert time.monotonic() - started < 1.0


async def test_a_write_waiting_for_the_lock_says_so_then_gives_up_at_its_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.db"
    await make_db(path)
    store = SQLiteStore(str(path))
    notices: list[tuple[float, str]] = []
    store.on_lock_wait = lambda message: notices.append((time.monotonic(), message))
    store.lock_timeout = 2.5
    await store.open()
    try:
        with write_lock_held(path):
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailableError, match="nothing was written") as info:
                await store.append(append("r1", 2))
            gave_up = time.monotonic() - started
        assert 2.5 <= gave_up < 4.0
        assert len(notices) == 1
        at, message = notices[0]
        assert 0.9 <= at - started < 2.0
        assert message.startswith("waiting for the database write lock held by another process")
        assert str(path) in message
        error = str(info.value)
        assert str(path) in error and "lock_timeout" in error and "nothing was written" in error
        # Nothing was written; with the lock free the same write goes through.
        assert [e.seq for e in await store.read_events("r1")] == [1, 2]
        await store.append(append("r1", 2))
        assert [e.seq for e in await store.read_events("r1")] == [1, 2, 3]
    finally:
        await store.close()


async def test_by_default_a_write_waits_with_a_log_warning_after_a_second(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d.db"
    await make_db(path)
    store = SQLiteStore(str(path))
    assert store.lock_timeout is None  # a worker waits as long as it takes
    await store.open()
    caplog.set_level(logging.WARNING, logger="durable.storage.sqlite")
    try:
        with write_lock_held(path):
            pending = store.append(append("r1", 2))
            await asyncio.sleep(1.6)
            assert not pending.done()
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any("waiting for the database write lock" in w for w in warnings), warnings
        await asyncio.wait_for(pending, 10)  # the lock was released: the write is made
        assert [e.seq for e in await store.read_events("r1")] == [1, 2, 3]
    finally:
        await store.close()


async def test_closing_the_store_ends_a_write_still_waiting_for_the_lock(tmp_path: Path) -> None:
    # Ctrl-C on a command waiting for the lock closes the store: that must not wait forever.
    path = tmp_path / "d.db"
    await make_db(path)
    store = SQLiteStore(str(path))
    store.on_lock_wait = lambda message: None
    await store.open()
    with write_lock_held(path):
        pending = store.append(append("r1", 2))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await asyncio.wait_for(store.close(), 10)
        assert time.monotonic() - started < 3.0
        with pytest.raises(DatabaseUnavailableError, match=r"closed while .* nothing was written"):
            await pending
    await store.open()  # the same store, opened again, waits again when it must
    try:
        assert [e.seq for e in await store.read_events("r1")] == [1, 2]
        with write_lock_held(path):
            pending = store.append(append("r1", 2))
            await asyncio.sleep(CLOSING_GRACE + 0.5)
            assert not pending.done()
        await asyncio.wait_for(pending, 10)
    finally:
        await store.close()


def test_lock_timeout_is_a_url_option() -> None:
    store = open_store("sqlite:///x.db?lock_timeout=2.5&busy_timeout_ms=10")
    assert isinstance(store, SQLiteStore) and store.lock_timeout == 2.5
    default = open_store("sqlite:///x.db")
    assert isinstance(default, SQLiteStore) and default.lock_timeout is None
    for bad in ("0", "-1", "soon", "inf", "nan", ""):
        with pytest.raises(DatabaseURLError, match="lock_timeout must be a positive"):
            open_store(f"sqlite:///x.db?lock_timeout={bad}")


async def test_creating_a_new_database_waits_for_the_lock_and_says_so(tmp_path: Path) -> None:
    # A file with no tables yet, locked by its creator: initializing it must wait (and say so).
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
    notices: list[str] = []
    store = SQLiteStore(str(path))
    store.on_lock_wait = notices.append
    store.lock_timeout = 1.5
    with write_lock_held(path), pytest.raises(DatabaseUnavailableError, match="lock_timeout"):
        await store.open()
    assert len(notices) == 1
    await store.open()  # unlocked: created
    try:
        await create(store, "r")
    finally:
        await store.close()


# ----------------------------------------------------------------------- the schema, migrated

# The schema as release 3 created it (SQLAlchemy's DDL of the version-3 tables, verbatim): events
# without a checksum column.
VERSION_3_DDL = """
CREATE TABLE durable_definitions (
    name VARCHAR(255) NOT NULL, version VARCHAR(64) NOT NULL, fingerprint VARCHAR(64) NOT NULL,
    format VARCHAR(16) NOT NULL, source TEXT NOT NULL, created_at FLOAT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE durable_events (
    run_id VARCHAR(255) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(64) NOT NULL,
    data BLOB NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE durable_inbox (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, run_id VARCHAR(255) NOT NULL,
    kind VARCHAR(64) NOT NULL, name VARCHAR(255) NOT NULL, payload BLOB NOT NULL,
    created_at FLOAT NOT NULL, dedupe_key VARCHAR(255)
);
CREATE INDEX ix_durable_inbox_run ON durable_inbox (run_id, id);
CREATE UNIQUE INDEX ux_durable_inbox_dedupe ON durable_inbox (run_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE TABLE durable_runs (
    run_id VARCHAR(255) NOT NULL, workflow VARCHAR(255) NOT NULL, version VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL, input BLOB NOT NULL, result BLOB, error BLOB,
    parent_run_id VARCHAR(255), created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    finished_at FLOAT, last_seq INTEGER NOT NULL, owner VARCHAR(255), epoch INTEGER NOT NULL,
    lease_expires_at FLOAT, ready_at FLOAT, PRIMARY KEY (run_id)
);
CREATE INDEX ix_durable_runs_claim ON durable_runs (status, ready_at);
CREATE INDEX ix_durable_runs_created ON durable_runs (created_at, run_id);
CREATE INDEX ix_durable_runs_finished ON durable_runs (finished_at);
CREATE INDEX ix_durable_runs_workflow ON durable_runs (workflow, status);
CREATE TABLE durable_schema (
    id INTEGER NOT NULL, version INTEGER NOT NULL, note TEXT, PRIMARY KEY (id)
);
CREATE TABLE durable_workers (
    owner VARCHAR(255) NOT NULL, capabilities TEXT NOT NULL, started_at FLOAT NOT NULL,
    last_seen FLOAT NOT NULL, expires_at FLOAT NOT NULL, PRIMARY KEY (owner)
);
INSERT INTO durable_schema VALUES (1, 3, 'created by durable');
INSERT INTO durable_runs VALUES ('old', 'wf', 'v1', 'pending', x'00', NULL, NULL, NULL,
    1000.0, 1000.0, NULL, 3, NULL, 0, NULL, NULL);
INSERT INTO durable_events VALUES ('old', 1, 'Started', x'01', 1000.0);
INSERT INTO durable_events VALUES ('old', 2, 'E', x'', 1001.0);
INSERT INTO durable_events VALUES ('old', 3, 'E', x'00ff', 1002.0);
INSERT INTO durable_definitions VALUES ('etl', '1', 'fp', 'json', '{}', 1000.0);
"""


async def test_a_version_3_database_gains_event_checksums_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_3_DDL)
    # Two processes upgrading at once: one migrates, the other finds it done.
    a, b = SQLiteStore(str(path)), SQLiteStore(str(path))
    outcomes = await asyncio.gather(a.open(), b.open(), return_exceptions=True)
    try:
        assert list(outcomes) == [None, None]
        old = await a.read_events("old")
        assert [(e.seq, e.type, e.data) for e in old] == [
            (1, "Started", b"\x01"),
            (2, "E", b""),
            (3, "E", b"\x00\xff"),
        ]
        assert await b.count_definitions() == 1
        await a.append(append("old", 3))
        await create(b, "new")
    finally:
        await asyncio.gather(a.close(), b.close())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version, note FROM durable_schema").fetchall() == [
            (SCHEMA_VERSION, "migrated from 3 by durable")
        ]
        unchecked = conn.execute("SELECT count(*) FROM durable_events WHERE checksum IS NULL")
        assert unchecked.fetchone() == (0,)
        # The old events' checksums were computed: a change to one is now caught.
        conn.execute("UPDATE durable_events SET data = x'02' WHERE run_id = 'old' AND seq = 1")
    store = SQLiteStore(str(path))
    await store.open()
    try:
        with pytest.raises(Exception, match=r"event #1 \(Started\).*damaged"):
            await store.read_events("old")
    finally:
        await store.close()


async def test_an_older_database_is_migrated_only_once_the_lock_is_free(tmp_path: Path) -> None:
    # Migrating is a write: it waits for another process's lock, unlike opening a current one.
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_3_DDL)
    store = SQLiteStore(str(path))
    store.lock_timeout = 1.2
    with write_lock_held(path), pytest.raises(DatabaseUnavailableError, match="lock_timeout"):
        await store.open()
    await store.open()
    try:
        assert len(await store.read_events("old")) == 3
    finally:
        await store.close()


# --------------------------------------------------------------------------- read-only files


def as_unprivileged(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python code as a user without root's right to write any file (nobody, when the tests
    run as root), so a file's permissions really apply."""
    command = [sys.executable, "-c", code, *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            unavailable("running as root without setpriv: cannot drop the right to write")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}:{root / 'tests' / 'storage'}"}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd="/")


READ_THEN_WRITE = """
import asyncio, sqlite3, sys
from storage import SQLiteStore, DatabaseOpenError
from storekit import append

path = sys.argv[1]
try:  # proof that this process really may not write the file
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM durable_workers")
    print("WROTE")
except sqlite3.OperationalError as exc:
    print("refused:", exc)

async def main():
    store = SQLiteStore(path)
    await store.open()
    try:
        print("events", [e.seq for e in await store.read_events("r1")])
        print("run", (await store.get_run("r1")).last_seq)
        try:
            await store.append(append("r1", 2))
        except DatabaseOpenError as exc:
            print("write:", exc)
    finally:
        await store.close()

asyncio.run(main())
"""


def shared_dir(tmp_path: Path) -> Path:
    """A directory the unprivileged user can reach (pytest's base directory is root's only)."""
    where = Path("/tmp") / f"durable-ro-{os.getpid()}-{tmp_path.name}"
    where.mkdir()
    where.chmod(0o777)
    return where


@pytest.mark.parametrize("how", ["read-only file", "read-only directory"])
async def test_a_read_only_database_can_be_read_and_refuses_writes(
    tmp_path: Path, how: str
) -> None:
    where = shared_dir(tmp_path)
    try:
        path = where / "d.db"
        await make_db(path)
        checkpointed(path)  # no -wal or -shm left: a read-only directory can't hold new ones
        if how == "read-only file":
            path.chmod(0o444)
        else:
            path.chmod(0o666)
            where.chmod(0o555)
        done = as_unprivileged(READ_THEN_WRITE, str(path))
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("refused:"), lines  # the permissions really apply
        assert lines[1:3] == ["events [1, 2]", "run 2"]
        assert lines[3].startswith(f"write: cannot write to SQLite database {path}")
        assert "read-only" in lines[3]
        assert len(lines) == 4
    finally:
        where.chmod(0o777)
        shutil.rmtree(where)


async def test_a_read_only_database_at_an_older_version_says_it_needs_migrating(
    tmp_path: Path,
) -> None:
    where = shared_dir(tmp_path)
    try:
        path = where / "v3.db"
        with sqlite3.connect(path) as conn:
            conn.executescript(VERSION_3_DDL)
        path.chmod(0o444)
        done = as_unprivileged(
            "import asyncio, sys\nfrom storage import SQLiteStore, DatabaseOpenError\n"
            "try:\n    asyncio.run(SQLiteStore(sys.argv[1]).open())\n"
            "except DatabaseOpenError as exc:\n    print(exc)\n",
            str(path),
        )
        assert done.returncode == 0, done.stderr
        assert str(path) in done.stdout and "read-only" in done.stdout
        assert "schema version 3" in done.stdout and "write access" in done.stdout
    finally:
        shutil.rmtree(where)


async def test_new_events_of_a_created_run_carry_checksums(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.create_run(new_run("r"), event("r", 1))
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT checksum IS NOT NULL FROM durable_events").fetchall() == [(1,)]
    assert T0


OPEN_AND_READ = """
import asyncio, sys
from storage import SQLiteStore

async def main():
    store = SQLiteStore(sys.argv[1])
    await store.open()
    print(len(await store.read_events("r1")))
    await store.close()

asyncio.run(main())
print(sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "asyncpg"}))
"""


async def test_opening_a_current_database_loads_no_schema_machinery(tmp_path: Path) -> None:
    # Checking the schema is plain reads: SQLAlchemy is only needed to create or migrate.
    path = tmp_path / "d.db"
    await make_db(path)
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OPEN_AND_READ,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, _ = await done.communicate()
    assert out.decode().split() == ["2", "[]"]
