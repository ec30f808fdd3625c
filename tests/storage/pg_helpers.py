"""What the PostgreSQL-only storage tests share: a store opened on a URL, a plain asyncpg
connection to the test server, a URL's schema."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from storage import PostgresStore


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore.from_url(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def admin(url: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run fn on a plain asyncpg connection to the test server (outside any store)."""
    conn = await asyncpg.connect(url.split("?", 1)[0])
    try:
        return await fn(conn)
    finally:
        await conn.close()


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]
