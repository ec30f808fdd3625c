"""App's methods for external waits (ctx.wait_external): completing and failing them by token
from any process (a mixin of App; the work is in durable.interact._external)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable.interact._external import ExternalWaitInfo, list_external

if TYPE_CHECKING:
    from durable._engine import Engine


class ExternalMethods:
    """`app.complete(token, result)`, `app.fail(token, error)`, `app.external_waits(run_id)`."""

    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # App's

    async def complete(self, token: str, result: Any = None) -> None:
        """Complete the external wait `token` names (ctx.wait_external(...).token): its await
        returns `result`. Exactly once: a wait already completed, failed or timed out raises
        ExternalAlreadySettledError; a token that names no wait raises InvalidTokenError."""
        await self.engine.client.complete(token, result)

    async def fail(
        self, token: str, error: str | BaseException, *, type: str | None = None
    ) -> None:
        """Fail the external wait `token` names: its await raises ExternalFailed carrying
        `error` (a message, or an exception). Exactly once, as complete()."""
        await self.engine.client.fail(token, error, type=type)

    async def external_waits(self, run_id: str) -> list[ExternalWaitInfo]:
        """The run's external waits: name, status, deadline (never their tokens)."""
        return await list_external(self.engine.client, run_id)
