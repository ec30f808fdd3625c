"""SQL text shared by the two SQL backends: a statement is written once with SQLite's `?`
placeholders, and PostgreSQL's copy is derived from it."""

from __future__ import annotations


def numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's $1, $2, ... (the shared SQL has no literal `?`)."""
    parts = sql.split("?")
    return "".join(f"{p}${i}" for i, p in enumerate(parts[:-1], 1)) + parts[-1]
