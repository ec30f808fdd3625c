"""The throwaway PostgreSQL server the PostgreSQL tests run against is what they claim to be."""

from __future__ import annotations

import asyncpg
import pgserver
import pytest
from pgserver import PgSession


async def test_server_is_durable_and_on_loopback(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        # The benchmarks and crash tests measure durable commits: fsync must not be off.
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SELECT inet_server_addr()::text") in ("127.0.0.1/32", None)
    finally:
        await conn.close()


def test_each_test_gets_its_own_schema(pg_schema_factory: PgSession) -> None:
    first, second = pg_schema_factory.fresh_url(), pg_schema_factory.fresh_url()
    assert first != second
    assert first.startswith(pg_schema_factory.url) and "?schema=t_" in first


def test_no_binaries_outside_ci_is_a_clear_reason_not_an_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pgserver, "find_bindir", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(pgserver.INSTALL_ENV, raising=False)
    with pytest.raises(pgserver.PgUnavailable, match="install the Debian package 'postgresql'"):
        pgserver.start()
