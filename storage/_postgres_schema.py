"""The PostgreSQL schema, created or migrated on first use, safely under concurrency.

The tables are those of storage._schema (SQLAlchemy Core), compiled to DDL by SQLAlchemy's
PostgreSQL dialect and run over the store's own asyncpg connection: no second driver, and no
connection outside the pool.

Versioning: the row of durable_schema holds the version the tables are at.

- A database without the tables gets the current schema at once (metadata.create_all, then
  stamped with SCHEMA_VERSION): a fresh database never replays history.
- A database at an older version gets MIGRATIONS[v], MIGRATIONS[v + 1], ... in order, each
  taking it from version v to v + 1 (its statements, then its FILLS[v], if it has one: data
  computed in Python, like the checksums of the events already stored).
- A database at a newer version than this release knows is refused (never written to).

Everything happens in one transaction holding an advisory lock keyed by the schema name: when
many workers start together, one creates or migrates and the others wait, then find the work
done. PostgreSQL's DDL is transactional, so a migration that fails leaves the previous version
whole.

(Alembic would give the same guarantees with more machinery; this runner is the seam where it
would plug in.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable, DDLElement

from storage._checksum import event_checksum
from storage._errors import DatabaseOpenError
from storage._schema import (
    MIGRATION_2_INDEXES,
    MIGRATION_2_TABLES,
    MIGRATION_3_TABLES,
    MIGRATION_4_COLUMNS,
    MIGRATION_5_TABLES,
    MIGRATION_6_COLUMNS,
    MIGRATION_6_INDEXES,
    MIGRATION_6_TABLES,
    MIGRATION_7_UPDATES,
    SCHEMA_VERSION,
    metadata,
)

# A migration: the statements that take the schema from one version to the next, built from
# SQLAlchemy constructs (or, for data moves, parameterless SQL) when it is applied.
Migration = Callable[[], Sequence[str]]
# Data a migration computes in Python after its statements, on the migrating connection.
Fill = Callable[[Any], Awaitable[None]]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def ddl(element: DDLElement) -> str:
    return str(element.compile(dialect=_DIALECT))


def _create_tables(tables: Sequence[Table]) -> list[str]:
    """CREATE TABLE for each table, each followed by its indexes."""
    statements: list[str] = []
    for table in tables:
        statements.append(ddl(CreateTable(table)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(ddl(CreateIndex(index)))
    return statements


def _to_version_2() -> list[str]:
    """1 -> 2: the inbox and workers tables, the index prune_runs reads."""
    statements = _create_tables(MIGRATION_2_TABLES)
    statements += [ddl(CreateIndex(index)) for index in MIGRATION_2_INDEXES]
    return statements


def _to_version_3() -> list[str]:
    """2 -> 3: the workflow definitions table."""
    return _create_tables(MIGRATION_3_TABLES)


def _to_version_4() -> list[str]:
    """3 -> 4: the events' checksum column (filled by _fill_checksums)."""
    return [
        f"ALTER TABLE {c.table.name} ADD COLUMN {c.name} {c.type.compile(dialect=_DIALECT)}"
        for c in MIGRATION_4_COLUMNS
    ]


def _to_version_5() -> list[str]:
    """4 -> 5: the schedules table."""
    return _create_tables(MIGRATION_5_TABLES)


def _to_version_6() -> list[str]:
    """5 -> 6: the runs' queue columns and indexes, the queues table."""
    statements = [
        f"ALTER TABLE {c.table.name} ADD COLUMN {c.name} {c.type.compile(dialect=_DIALECT)}"
        for c in MIGRATION_6_COLUMNS
    ]
    statements += [ddl(CreateIndex(index)) for index in MIGRATION_6_INDEXES]
    return statements + _create_tables(MIGRATION_6_TABLES)


def _to_version_7() -> list[str]:
    """6 -> 7: issue 17's tables (the updates table here; the other slices add theirs)."""
    return _create_tables(MIGRATION_7_UPDATES)


# Events per round trip when computing the checksums of the events already stored.
_FILL_BATCH = 5000
_UNCHECKED = (
    "SELECT run_id, seq, type, data FROM durable_events WHERE (run_id, seq) > ($1, $2) "
    "ORDER BY run_id, seq LIMIT $3"
)
_SET_CHECKSUMS = """
UPDATE durable_events AS e SET checksum = x.checksum
FROM unnest($1::text[], $2::int4[], $3::int8[]) AS x(run_id, seq, checksum)
WHERE e.run_id = x.run_id AND e.seq = x.seq
"""


async def _fill_checksums(conn: Any) -> None:
    """The checksum of every event already stored, in batches walked in key order."""
    after: tuple[str, int] = ("", -(2**31))
    while True:
        rows = await conn.fetch(_UNCHECKED, after[0], after[1], _FILL_BATCH)
        if not rows:
            return
        await conn.execute(
            _SET_CHECKSUMS,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [event_checksum(r[0], r[1], r[2], r[3]) for r in rows],
        )
        after = (rows[-1][0], rows[-1][1])


MIGRATIONS: Mapping[int, Migration] = {
    1: _to_version_2,
    2: _to_version_3,
    3: _to_version_4,
    4: _to_version_5,
    5: _to_version_6,
    6: _to_version_7,
}
FILLS: Mapping[int, Fill] = {3: _fill_checksums}


def create_all() -> list[str]:
    """The current schema, as DDL statements in dependency order."""
    return _create_tables(metadata.sorted_tables)


def lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory lock key for migrating one schema."""
    digest = hashlib.blake2b(f"durable.migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def migrate(
    conn: Any,
    schema: str,
    *,
    create_schema: bool,
    where: str,
    target: int = SCHEMA_VERSION,
    migrations: Mapping[int, Migration] = MIGRATIONS,
    fills: Mapping[int, Fill] = FILLS,
) -> int:
    """Bring the tables in `schema` to version `target`; returns the version found before.

    `conn` is an asyncpg connection whose search_path starts with `schema`; `where` names the
    database in error messages (password already masked)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema))
        if create_schema:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        table = f"{quote_ident(schema)}.durable_schema"
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        found = 0
        if exists:
            found = await conn.fetchval(f"SELECT version FROM {table} WHERE id = 1") or 0
        if found > target:
            raise DatabaseOpenError(
                f"database {where} has schema version {found}, newer than this durable "
                f"release understands ({target}); upgrade durable"
            )
        if found == target:
            return found
        if not exists:
            await conn.execute(";\n".join(create_all()))
            await conn.execute(
                f"INSERT INTO {table} (id, version, note) VALUES (1, $1, $2)",
                target,
                "created by durable",
            )
            return found
        for version in range(found, target):
            step = migrations.get(version)
            if step is None:
                raise DatabaseOpenError(
                    f"database {where} has schema version {found} and this release has no "
                    f"migration from version {version}; upgrade through an earlier release"
                )
            statements = step()
            if statements:
                await conn.execute(";\n".join(statements))
            fill = fills.get(version)
            if fill is not None:
                await fill(conn)
        await conn.execute(
            f"UPDATE {table} SET version = $1, note = $2 WHERE id = 1",
            target,
            f"migrated from {found} by durable",
        )
        return found
