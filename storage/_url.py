"""Turn a database URL into a store.

memory://                      in-process, not durable (tests)
sqlite:///relative/path.db     a SQLite file (four slashes for an absolute path)
sqlite:////abs/path.db?synchronous=normal&busy_timeout_ms=10000&lock_timeout=60
/some/path.db, ./durable.db    a bare path is a SQLite file too
postgresql://user:pw@host/db   PostgreSQL (also postgres://, postgresql+asyncpg://), options
    ?pool_size=10&pool_min_size=1&schema=NAME; other options go to asyncpg (e.g. sslmode)
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from storage._errors import DatabaseURLError
from storage._memory import MemoryStore
from storage._pgurl import SCHEMES, mask_url
from storage._protocol import Store
from storage._sqlite import SYNCHRONOUS_MODES, SQLiteStore

DEFAULT_URL = "sqlite:///durable.db"


def open_store(url: str) -> Store:
    """Build (but do not open) the store a URL names. Raises DatabaseURLError on a bad URL."""
    url = url.strip()
    if not url:
        raise DatabaseURLError("empty database URL; try sqlite:///durable.db or memory://")
    if "://" not in url:
        return SQLiteStore(url)
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in SCHEMES:
        from storage._postgres import PostgresStore  # asyncpg and SQLAlchemy: only for it

        return PostgresStore.from_url(url)
    raise DatabaseURLError(
        f"unsupported database URL scheme {scheme!r} in {mask_url(url)}; "
        "use sqlite:///path.db, postgresql://user@host/db, memory:// or a file path"
    )


def _sqlite(url: str) -> SQLiteStore:
    rest = url.split("://", 1)[1]
    path_part, _, query = rest.partition("?")
    if not path_part.startswith("/") or path_part == "/":
        raise DatabaseURLError(
            f"bad SQLite URL {url!r}: expected sqlite:///relative.db or sqlite:////absolute.db"
        )
    path = path_part[1:]
    if path in (":memory:", "") or path.startswith("file:"):
        raise DatabaseURLError(
            f"bad SQLite URL {url!r}: an in-memory SQLite database can't be shared by the "
            "writer and readers; use memory:// for a throwaway store"
        )
    options = dict(parse_qsl(query, keep_blank_values=True))
    synchronous = options.pop("synchronous", "full").lower()
    if synchronous not in SYNCHRONOUS_MODES:
        raise DatabaseURLError(
            f"bad SQLite URL {url!r}: synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}"
        )
    try:
        busy = int(options.pop("busy_timeout_ms", "5000"))
    except ValueError:
        raise DatabaseURLError(
            f"bad SQLite URL {url!r}: busy_timeout_ms must be an integer"
        ) from None
    lock_timeout: float | None = None
    if "lock_timeout" in options:
        try:
            lock_timeout = float(options.pop("lock_timeout"))
        except ValueError:
            lock_timeout = -1.0
        if not 0 < lock_timeout < float("inf"):
            raise DatabaseURLError(
                f"bad SQLite URL {url!r}: lock_timeout must be a positive number of seconds"
            )
    if options:
        raise DatabaseURLError(
            f"bad SQLite URL {url!r}: unknown option(s) {', '.join(sorted(options))} "
            "(known: synchronous, busy_timeout_ms, lock_timeout)"
        )
    return SQLiteStore(
        path, synchronous=synchronous, busy_timeout_ms=busy, lock_timeout=lock_timeout
    )
