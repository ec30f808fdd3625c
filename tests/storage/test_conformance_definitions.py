"""Conformance of the workflow definitions table: put_definition (immutable: insert, idempotent
repeat, or conflict), get_definition, list_definitions and count_definitions. Written once, run
against every backend in conftest (memory, SQLite, PostgreSQL); the puts racing from several
stores on one database run on the two SQL backends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from conftest import StoreFactory
from storekit import CLOSED, T0

from storage import (
    DefinitionConflictError,
    DefinitionRecord,
    PostgresStore,
    SQLiteStore,
    StorageError,
    Store,
    StoreClosedError,
)

# Text a store must give back byte for byte: non-ASCII (accents, CJK, an emoji outside the BMP),
# LF and CRLF line ends, tabs, trailing spaces, quotes and backslashes, no final newline.
SOURCE = (
    '{\n  "name": "étl-数据",\r\n\t"steps": [{"id": "ünïcode 🚀", "run": "echo \\"hi\\"\\n"}]   \n'
    "  # trailing spaces   \n}"
)


def definition(
    name: str = "etl",
    version: str = "1",
    *,
    fingerprint: str | None = None,
    format: str = "json",
    source: str | None = None,
    at: float = T0,
) -> DefinitionRecord:
    """A definition whose fingerprint and source name it unless given."""
    return DefinitionRecord(
        name=name,
        version=version,
        fingerprint=fingerprint or f"fp-{name}-{version}".ljust(64, "0"),
        format=format,
        source=f'{{"name": "{name}", "version": "{version}"}}' if source is None else source,
        created_at=at,
    )


async def snapshot(store: Store) -> tuple[list[DefinitionRecord], int]:
    return await store.list_definitions(), await store.count_definitions()


# ---------------------------------------------------------------------------- put and get


async def test_put_then_get_gives_the_record_back_unchanged(store: Store) -> None:
    record = definition(source=SOURCE, format="yaml", fingerprint="a" * 64, at=T0 + 0.125)
    assert await store.put_definition(record) == (record, True)
    got = await store.get_definition("etl", "1")
    assert got == record
    assert got is not None and got.source == SOURCE  # the text, not a re-encoding of it
    assert await store.list_definitions() == [record]
    assert await store.count_definitions() == 1


async def test_a_stored_definition_survives_closing_the_store(store: Store) -> None:
    record = definition(source=SOURCE)
    await store.put_definition(record)
    await store.close()
    await store.open()
    assert await store.get_definition("etl", "1") == record


async def test_unknown_definitions_are_none(store: Store) -> None:
    assert await store.get_definition("etl", "1") is None
    await store.put_definition(definition("etl", "1"))
    assert await store.get_definition("etl", "2") is None
    assert await store.get_definition("other", "1") is None
    assert await store.get_definition("ETL", "1") is None  # names are case-sensitive
    assert await store.get_definition("etl", "1") is not None


async def test_putting_the_same_definition_again_writes_nothing(store: Store) -> None:
    first = definition(source="first text", at=T0)
    assert await store.put_definition(first) == (first, True)
    # Same fingerprint (the same definition, e.g. re-registered from reformatted text, or by
    # another process later): the stored record is returned, as first put.
    again = msgspec.structs.replace(first, source="second text", format="yaml", created_at=T0 + 5)
    assert await store.put_definition(again) == (first, False)
    assert await store.put_definition(first) == (first, False)
    assert await store.get_definition("etl", "1") == first
    assert await snapshot(store) == ([first], 1)


async def test_a_different_definition_under_a_stored_version_is_refused(store: Store) -> None:
    stored = definition(fingerprint="1a2b3c4d5e6f" + "0" * 52)
    other = definition("etl", "2", fingerprint="abc")
    await store.put_definition(stored)
    await store.put_definition(other)
    before = await snapshot(store)
    changed = definition(fingerprint="9f8e7d6c5b4a" + "f" * 52, source="changed", at=T0 + 9)
    with pytest.raises(DefinitionConflictError, match=r"^workflow 'etl' version '1' is") as info:
        await store.put_definition(changed)
    err = info.value
    assert isinstance(err, StorageError)
    assert (err.name, err.version) == ("etl", "1")
    assert err.existing_fingerprint == stored.fingerprint
    assert err.fingerprint == changed.fingerprint
    assert str(err) == (
        "workflow 'etl' version '1' is already stored with a different definition "
        "(fingerprint 1a2b3c4d5e6f, not 9f8e7d6c5b4a): register the change as a new version"
    )
    assert await store.get_definition("etl", "1") == stored
    assert await snapshot(store) == before
    # The refusal left the store usable: the same definition is still accepted as stored.
    assert await store.put_definition(stored) == (stored, False)


async def test_names_and_versions_are_independent_keys(store: Store) -> None:
    # The same version under two names, two versions of one name: four definitions.
    records = [definition(n, v) for n in ("a", "b") for v in ("1", "2")]
    for r in records:
        assert await store.put_definition(r) == (r, True)
    for r in records:
        assert await store.get_definition(r.name, r.version) == r
    assert await store.count_definitions() == 4


# ---------------------------------------------------------------------------- list and count


async def test_list_orders_by_name_then_created_at_then_version(store: Store) -> None:
    puts = [
        definition("etl", "3", at=T0 + 1),
        definition("etl", "1", at=T0 + 2),  # registered after 3: created_at comes first
        definition("etl", "9", at=T0 + 3),
        definition("etl", "10", at=T0 + 3),  # same created_at: by version, as text
        definition("alpha", "1", at=T0 + 50),
        definition("Zeta", "1", at=T0 + 60),  # byte order: "Z" < "a"
        definition("etl-b", "1", at=T0),
    ]
    for r in puts:
        await store.put_definition(r)
    listed = [(d.name, d.version) for d in await store.list_definitions()]
    assert listed == [
        ("Zeta", "1"),
        ("alpha", "1"),
        ("etl", "3"),
        ("etl", "1"),
        ("etl", "10"),
        ("etl", "9"),
        ("etl-b", "1"),
    ]
    etl = await store.list_definitions("etl")
    assert [d.version for d in etl] == ["3", "1", "10", "9"]
    assert all(d == next(p for p in puts if p.version == d.version) for d in etl)
    assert await store.list_definitions("etl-b") == [puts[-1]]
    assert await store.list_definitions("nope") == []
    assert await store.list_definitions("") == []


async def test_count_follows_inserts_only(store: Store) -> None:
    assert await store.count_definitions() == 0
    assert await store.list_definitions() == []
    await store.put_definition(definition("a", "1"))
    assert await store.count_definitions() == 1
    await store.put_definition(definition("a", "1"))  # idempotent: no new row
    with pytest.raises(DefinitionConflictError, match=r"^workflow 'a' version '1' is already"):
        await store.put_definition(definition("a", "1", fingerprint="other"))
    assert await store.count_definitions() == 1
    await store.put_definition(definition("a", "2"))
    await store.put_definition(definition("b", "1"))
    assert await store.count_definitions() == 3


# ---------------------------------------------------------------------------- concurrency


async def test_concurrent_puts_of_one_definition_insert_it_once(store: Store) -> None:
    # Copies differing only in created_at and source: whichever is stored, all see that one.
    copies = [definition(source=f"copy {i}", at=T0 + i) for i in range(16)]
    results = await asyncio.gather(*(store.put_definition(c) for c in copies))
    assert sum(created for _, created in results) == 1
    (winner,) = [record for record, created in results if created]
    assert all(record == winner for record, _ in results)
    assert await store.get_definition("etl", "1") == winner
    assert await snapshot(store) == ([winner], 1)


async def test_concurrent_puts_of_conflicting_definitions_store_one(store: Store) -> None:
    rivals = [definition(fingerprint=f"fp{i % 4}", source=f"rival {i}") for i in range(16)]
    results = await asyncio.gather(
        *(store.put_definition(r) for r in rivals), return_exceptions=True
    )
    winner = await check_one_winner(rivals, results)
    assert await store.get_definition("etl", "1") == winner
    assert await snapshot(store) == ([winner], 1)


async def check_one_winner(
    puts: list[DefinitionRecord], results: list[tuple[DefinitionRecord, bool] | BaseException]
) -> DefinitionRecord:
    """Of racing puts of one (name, version), exactly one inserted; each other one returned
    the winner (same fingerprint) or was refused with a conflict naming the winner."""
    won = [r for r in results if isinstance(r, tuple) and r[1]]
    assert len(won) == 1, results
    winner = won[0][0]
    assert winner in puts
    for put, result in zip(puts, results, strict=True):
        if isinstance(result, BaseException):
            assert isinstance(result, DefinitionConflictError), repr(result)
            assert result.existing_fingerprint == winner.fingerprint
            assert result.fingerprint == put.fingerprint != winner.fingerprint
        else:
            assert result[0] == winner
            assert put.fingerprint == winner.fingerprint
    return winner


@contextlib.asynccontextmanager
async def sharing(
    backend: str, request: pytest.FixtureRequest, count: int
) -> AsyncIterator[list[Store]]:
    """`count` open stores on one database, as `count` processes would have."""
    stores: list[Store]
    if backend == "sqlite":
        tmp: Path = request.getfixturevalue("tmp_path")
        stores = [SQLiteStore(str(tmp / "shared.db")) for _ in range(count)]
    else:
        url: str = request.getfixturevalue("pg_fresh_url")
        stores = [PostgresStore.from_url(url) for _ in range(count)]
    try:
        for s in stores:  # one at a time: a new database is created once
            await s.open()
        yield stores
    finally:
        await asyncio.gather(*(s.close() for s in stores))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_puts_racing_from_several_stores_on_one_database(
    backend: str, request: pytest.FixtureRequest
) -> None:
    async with sharing(backend, request, 4) as stores:
        expected: list[DefinitionRecord] = []
        for round in range(12):
            name, version = f"wf{round % 3}", str(round)
            # Every store puts the same key at once, from several tasks each; even rounds put
            # one definition (idempotent copies), odd rounds rival ones (conflicts).
            puts = [
                definition(
                    name,
                    version,
                    fingerprint=f"fp{(i % 3) * (round % 2)}",
                    source=f"store {i % len(stores)} task {i}",
                    at=T0 + round + i / 100,
                )
                for i in range(3 * len(stores))
            ]
            results = await asyncio.gather(
                *(stores[i % len(stores)].put_definition(p) for i, p in enumerate(puts)),
                return_exceptions=True,
            )
            expected.append(await check_one_winner(puts, results))
            for s in stores:  # every process sees the winner, at once
                assert await s.get_definition(name, version) == expected[-1]
        expected.sort(key=lambda d: (d.name, d.created_at, d.version))
        for s in stores:
            assert await snapshot(s) == (expected, len(expected))


# ---------------------------------------------------------------------------- closed store


async def test_definitions_of_a_closed_or_unopened_store_raise_store_closed(
    store_factory: StoreFactory,
) -> None:
    unopened = store_factory()
    closed = store_factory()
    await closed.open()
    await closed.put_definition(definition())
    await closed.close()
    for s in (unopened, closed):
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.put_definition(definition())
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.get_definition("etl", "1")
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.list_definitions()
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.count_definitions()
