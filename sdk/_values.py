"""App's methods for reading what runs show the outside: events (ctx.set_event) and queries
(ctx.on_query). A mixin of App, delegating to the engine's Client (durable.interact)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable._engine import Engine


class ValueMethods:
    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # App's

    async def get_event(self, run_id: str, key: str, *, timeout: float | None = None) -> Any:
        """The latest value the run set for `key` with ctx.set_event(), waiting until it is
        set. TimeoutError after `timeout` seconds (None: no limit); EventNotSetError if the
        run ends without setting it; RunNotFoundError for an unknown run. Works from any
        process sharing the database."""
        return await self.engine.client.get_event(run_id, key, timeout=timeout)

    async def list_events(self, run_id: str) -> dict[str, Any]:
        """Every key the run set with ctx.set_event(), with its latest value."""
        return await self.engine.client.list_events(run_id)

    async def query(self, run_id: str, name: str, *args: Any, timeout: float = 10.0) -> Any:
        """Ask the run's ctx.on_query handler `name`: the run is replayed in this process (it
        needs the workflow's code; nothing is written to the run's log), then
        handler(*args) is called read-only. UnknownQueryError if no handler of that name was
        registered by the point the run reached; QueryError if the handler issued a durable
        command or raised, or the run is a DAG run."""
        return await self.engine.client.query(run_id, name, *args, timeout=timeout)
