"""App's update methods (a mixin of App, like sdk._queues): sending updates to runs, whose
handlers (ctx.on_update) answer them durably, exactly once per update id."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durable.interact._updates import Update, UpdateInfo

if TYPE_CHECKING:
    from durable._engine import Engine
    from sdk._app import WorkflowRef


class UpdateMethods:
    """`app.update(...)`, `app.update_with_start(...)`, `app.get_update(...)`,
    `app.list_updates(...)`."""

    def _ref(self, workflow: WorkflowRef) -> str | Callable[..., Any]:
        raise NotImplementedError  # App's

    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # App's

    async def update(
        self,
        run_id: str,
        name: str,
        *args: Any,
        update_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Ask the run's handler `name` (ctx.on_update) to run with `args`; returns what it
        returned. UpdateRejected: its validator raised, it has no such handler, or the run
        ended first (nothing was recorded). UpdateFailed: the handler raised. TimeoutError
        after `timeout` seconds: the update goes on; call again with the same `update_id`
        to wait for it. The same `update_id` never runs twice: pass your own to retry
        safely after a crash (default: a new one)."""
        client = self.engine.client
        return await client.update(run_id, name, *args, update_id=update_id, timeout=timeout)

    async def update_with_start(
        self,
        workflow: WorkflowRef,
        input: Any = None,
        *,
        run_id: str,
        update: Update,
        version: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Start `workflow` as run `run_id` unless that run exists, and deliver `update` to
        it, in one transaction; returns the update's result (as update()). A run of the same
        workflow under that id just gets the update; another workflow's is
        RunIdConflictError."""
        return await self.engine.client.update_with_start(
            self._ref(workflow),
            input,
            run_id=run_id,
            update=update,
            version=version,
            timeout=timeout,
        )

    async def get_update(self, run_id: str, update_id: str) -> UpdateInfo:
        """An update of the run as it stands: status, result or error."""
        return await self.engine.client.get_update(run_id, update_id)

    async def list_updates(self, run_id: str) -> list[UpdateInfo]:
        """The run's updates, oldest first."""
        return await self.engine.client.list_updates(run_id)
