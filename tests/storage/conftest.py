"""The backends every storage test runs against.

Each backend is one entry of BACKENDS: a factory that builds an unopened store whose data lives
under the given directory (or somewhere equally private to the test). Adding postgres is one line
here; every conformance test and the state machine then run against it too. PostgreSQL needs
the session's server (tests/pgserver.py), so its factory is built from that fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pgserver import PgSession

from storage import MemoryStore, PostgresStore, SQLiteStore, Store


def _sqlite(tmp: Path) -> Store:
    # A fresh file per store: the state machine builds one per example in the same tmp_path.
    return SQLiteStore(str(tmp / f"store-{uuid.uuid4().hex}.db"))


BACKENDS: dict[str, Callable[[Path], Store]] = {
    "memory": lambda _tmp: MemoryStore(),
    "sqlite": _sqlite,
}

StoreFactory = Callable[[], Store]


@pytest.fixture(params=[*BACKENDS, "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Builds fresh, unopened stores of one backend (for tests that open, close or make many)."""
    if request.param == "postgres":
        # Skips (or, in CI, fails) here when no server can be had. Each store gets an
        # empty schema of its own on the one server.
        schemas: PgSession = request.getfixturevalue("pg_schema_factory")
        return lambda: PostgresStore.from_url(schemas.fresh_url())
    make = BACKENDS[request.param]
    return lambda: make(tmp_path)


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    """An open store of each backend, closed after the test."""
    s = store_factory()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
