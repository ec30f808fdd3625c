"""Reading the values table (ctx.set_event's projection), one mixin per backend so that the
store classes, already near their size limit, only name them. Writes happen in Store.append
(Append.values, storage._values_ops)."""

from __future__ import annotations

from typing import Any, Protocol

from storage import _values_ops as ops
from storage._records import RunValue


class _PgReads(Protocol):
    async def _fetch(self, sql: str, *args: object) -> list[Any]: ...


class _SQLiteReads(Protocol):
    async def _read(self, sql: str, params: tuple[object, ...]) -> list[Any]: ...


class _MemoryValues(Protocol):
    _values: dict[tuple[str, str], RunValue]

    def _check_open(self) -> None: ...


class PostgresValues:
    async def get_value(self: _PgReads, run_id: str, key: str) -> RunValue | None:
        """The latest value of `key` the run set (None: never set, or no such run)."""
        rows = await self._fetch(ops.PG_GET, run_id, key)
        return ops.row_to_value(rows[0]) if rows else None

    async def list_values(self: _PgReads, run_id: str) -> list[RunValue]:
        """Every key the run set, with its latest value, by key."""
        return [ops.row_to_value(r) for r in await self._fetch(ops.PG_LIST, run_id)]


class SQLiteValues:
    async def get_value(self: _SQLiteReads, run_id: str, key: str) -> RunValue | None:
        rows = await self._read(ops.SQLITE_GET, (run_id, key))
        return ops.row_to_value(rows[0]) if rows else None

    async def list_values(self: _SQLiteReads, run_id: str) -> list[RunValue]:
        return [ops.row_to_value(r) for r in await self._read(ops.SQLITE_LIST, (run_id,))]


class MemoryValues:
    async def get_value(self: _MemoryValues, run_id: str, key: str) -> RunValue | None:
        self._check_open()
        return self._values.get((run_id, key))

    async def list_values(self: _MemoryValues, run_id: str) -> list[RunValue]:
        self._check_open()
        return sorted(
            (v for (rid, _), v in self._values.items() if rid == run_id), key=lambda v: v.key
        )
