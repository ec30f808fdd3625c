"""Opening a SQLite path: what is there, whether this process may write it, and its schema.

What a path may hold, and what opening it does:

- nothing: a new database is created (its directory must exist and be writable);
- an empty file (zero bytes), or a SQLite database without a single table: initialized. There
  is nothing in it to lose, and a file another process is creating looks like that for an
  instant;
- a durable database at this release's schema version: used as it is. Finding that out is a
  plain read (no transaction, no DDL), so opening never waits for another process's write lock;
- one at an older version: migrated in one BEGIN IMMEDIATE transaction, which waits for the
  write lock as every write does (storage._sqlite_lock);
- one at a newer version: refused, never written to.

Anything else is refused with DatabaseOpenError naming the file and what is wrong, and left as
it is: a file that is not SQLite (text, random bytes, too short for SQLite's header), a damaged
or truncated SQLite file, another application's SQLite database (tables, but no durable_schema),
a durable database missing its version row or one of its tables.

Read-only: when this process may not write the file (no write permission, a read-only mount, or
a directory where SQLite can't create the -wal and -shm files WAL needs), the database is opened
with a SQLite URI in mode=ro. In a read-only directory without -wal and -shm files (no writer has
the database open: it would have created them) SQLite can't open a WAL database even so, and
immutable=1 is used instead. Reads work; every write raises DatabaseOpenError saying why the
database is read-only.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from storage._errors import DatabaseOpenError
from storage._schema_version import SCHEMA_VERSION, TABLES
from storage._sqlite_lock import is_locked, log

SQLITE_MAGIC = b"SQLite format 3\x00"
_ELSEWHERE = "point the database URL (--db / DURABLE_DATABASE_URL) at a durable database"


@dataclass(frozen=True, slots=True)
class Target:
    """A path about to be opened, as found on disk."""

    path: str
    read_only: str | None  # why this process may not write it (None: it may)
    reader_uris: tuple[str, ...]  # what to connect with for reading, in order of preference


def inspect_path(path: str) -> Target:
    """Classify a path before SQLite touches it; DatabaseOpenError if it can't be a database."""
    target = Path(path)
    parent = target.resolve().parent
    if not parent.is_dir():
        raise DatabaseOpenError(
            f"cannot open SQLite database {path}: directory {parent} does not exist "
            "(create it, or pass another --db / DURABLE_DATABASE_URL)"
        )
    if not target.exists():
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DatabaseOpenError(
                f"cannot create SQLite database {path}: directory {parent} is not writable"
            )
        return Target(path, None, (path,))
    if target.is_dir():
        raise DatabaseOpenError(f"cannot open SQLite database {path}: it is a directory")
    if not os.access(target, os.R_OK):
        raise DatabaseOpenError(
            f"cannot open SQLite database {path}: no read permission on the file"
        )
    try:
        with target.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise DatabaseOpenError(f"cannot open SQLite database {path}: {exc.strerror}") from None
    if head and head != SQLITE_MAGIC:
        raise DatabaseOpenError(
            f"cannot open {path}: it is not a SQLite database (the file does not start with "
            f"SQLite's header); {_ELSEWHERE}, or at a new file to create one"
        )
    why = _why_read_only(target, parent)
    if why is None:
        return Target(path, None, (path,))
    uri = "file:" + quote(str(target.resolve()))
    uris = [f"{uri}?mode=ro"]
    wal = Path(f"{target.resolve()}-wal")  # SQLite keeps it beside the file a symlink names
    if not (wal.exists() and wal.stat().st_size > 0):
        # Nothing in a -wal that immutable=1 would ignore.
        uris.append(f"{uri}?immutable=1")
    return Target(path, why, tuple(uris))


def _why_read_only(target: Path, parent: Path) -> str | None:
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    if not os.access(target, os.W_OK):
        return "no write permission on the file"
    if not os.access(parent, os.W_OK | os.X_OK):
        real = target.resolve()
        wal, shm = Path(f"{real}-wal"), Path(f"{real}-shm")
        if not all(p.exists() and os.access(p, os.W_OK) for p in (wal, shm)):
            return (
                f"directory {parent} is not writable, and SQLite needs to create the "
                "database's -wal and -shm files there"
            )
    return None


@dataclass(frozen=True, slots=True)
class Found:
    """What a plain read of the schema found."""

    tables: frozenset[str]
    version: int | None  # durable_schema's version; None without that table


Plan = Literal["ready", "create", "migrate"]


def read_schema(conn: sqlite3.Connection, path: str) -> Found:
    """The tables and schema version, with plain reads (no lock beyond a read snapshot)."""
    try:
        tables = frozenset(
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        )
        if "durable_schema" not in tables:
            return Found(tables, None)
        row = conn.execute("SELECT version FROM durable_schema WHERE id = 1").fetchone()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise  # not the file's fault: the caller says what it is
        raise DatabaseOpenError(damaged(path, exc)) from None
    if row is None or not isinstance(row[0], int):
        raise DatabaseOpenError(
            f"cannot open {path}: the durable database is damaged (its durable_schema table "
            f"holds no schema version); restore it from a backup, or {_ELSEWHERE}"
        )
    return Found(tables, row[0])


def plan(path: str, found: Found) -> Plan:
    """What opening must do to a database: use it, create the schema, or migrate it."""
    if found.version is None:
        if not found.tables:
            return "create"
        ours = sorted(t for t in found.tables if t.startswith("durable_"))
        if ours:
            raise DatabaseOpenError(
                f"cannot open {path}: the durable database is damaged (it has the tables "
                f"{', '.join(ours)} but no durable_schema table with the schema version); "
                f"restore it from a backup, or {_ELSEWHERE}"
            )
        others = sorted(found.tables)
        shown = ", ".join(others[:8]) + (f" and {len(others) - 8} more" if len(others) > 8 else "")
        raise DatabaseOpenError(
            f"cannot open {path}: it is a SQLite database but not a durable database (it has "
            f"the tables {shown}); it was left untouched: {_ELSEWHERE}, or at a new file"
        )
    if found.version < 1:
        raise DatabaseOpenError(
            f"cannot open {path}: the durable database is damaged (schema version "
            f"{found.version} never existed); restore it from a backup"
        )
    if found.version > SCHEMA_VERSION:
        raise DatabaseOpenError(
            f"database {path} has schema version {found.version}, newer than this durable "
            f"release understands ({SCHEMA_VERSION}); upgrade durable"
        )
    if found.version < SCHEMA_VERSION:
        return "migrate"
    missing = [t for t in TABLES if t not in found.tables]
    if missing:
        raise DatabaseOpenError(
            f"cannot open {path}: the durable database is damaged (schema version "
            f"{found.version}, but the table(s) {', '.join(missing)} are missing); restore it "
            "from a backup"
        )
    return "ready"


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is bad (corrupt, or not a database), rather than
    that it can't be opened or used this way (locked, read-only, missing -shm...)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return not isinstance(exc, sqlite3.OperationalError)
    return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def damaged(path: str, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "file is not a database" in text:
        return (
            f"cannot open {path}: it is not a SQLite database (or it is damaged beyond "
            f"SQLite's header); {_ELSEWHERE}, or at a new file to create one"
        )
    return (
        f"cannot open {path}: the database file is damaged ({text}); restore it from a "
        "backup (`sqlite3 FILE 'PRAGMA integrity_check'` shows what is wrong)"
    )


def explore(target: Target, busy_timeout_ms: int) -> tuple[Found, str]:
    """Read the schema through the first reader URI SQLite accepts; (found, that URI)."""
    last: sqlite3.Error | None = None
    for uri in target.reader_uris:
        try:
            with connection(uri, busy_timeout_ms) as conn:
                return read_schema(conn, target.path), uri
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise DatabaseOpenError(damaged(target.path, exc)) from None
            last = exc  # this URI can't open it: try the next
    assert last is not None
    how = "" if target.read_only is None else f" read-only ({target.read_only})"
    raise DatabaseOpenError(f"cannot open SQLite database {target.path}{how}: {last}")


@contextmanager
def connection(uri: str, busy_timeout_ms: int) -> Iterator[sqlite3.Connection]:
    is_uri = uri.startswith("file:")
    conn = sqlite3.connect(uri, uri=is_uri, isolation_level=None, timeout=busy_timeout_ms / 1000)
    with closing(conn):
        yield conn


def refuse_read_only(target: Target, found: Found, action: Plan) -> DatabaseOpenError:
    if action == "create":
        what = "it holds no durable database yet, and creating one needs write access"
    else:
        what = (
            f"it has schema version {found.version}, this release needs version "
            f"{SCHEMA_VERSION}, and migrating it needs write access once (open it with any "
            "durable command run by a user who may write it)"
        )
    return DatabaseOpenError(
        f"cannot open SQLite database {target.path}: it is read-only ({target.read_only}), and "
        f"{what}"
    )


def enable_wal(conn: sqlite3.Connection, path: str, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode (a property of the file, kept by every later connection)."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    # Switching takes an exclusive lock. When two connections race for it (two workers starting
    # together on a new file), SQLite fails one with "database is locked" at once, without
    # waiting busy_timeout (waiting could deadlock): so retry, up to busy_timeout.
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            if time.monotonic() >= deadline:
                # Another process keeps the file busy. It works in its rollback-journal mode
                # meanwhile (writes block readers while they commit); the next open retries.
                log.warning(
                    "SQLite database %s is not in WAL mode and another process keeps it "
                    "busy; using it as it is for now",
                    path,
                )
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    if str(mode).lower() != "wal":
        raise DatabaseOpenError(
            f"cannot put SQLite database {path} in WAL mode (got {mode!r}); "
            "is it on a network file system?"
        )


def create_or_migrate(
    conn: sqlite3.Connection, path: str, begin: Callable[[sqlite3.Connection], None]
) -> None:
    """Create or migrate the schema in one write transaction; `begin` starts it (BEGIN
    IMMEDIATE, waiting for the lock). Processes opening a new file together must not all see no
    tables and all create them: the check is made again under the lock."""
    from storage import _sqlite_schema  # SQLAlchemy, only when the schema must change

    begin(conn)
    try:
        found = read_schema(conn, path)
        action = plan(path, found)
        if action == "create":
            _sqlite_schema.create(conn)
        elif action == "migrate":
            assert found.version is not None
            _sqlite_schema.migrate(conn, found.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
