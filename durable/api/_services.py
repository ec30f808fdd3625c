"""What the API's route handlers share: the engine's client, the registry and the stored
definitions (reloaded on a miss: another API process may have just registered one)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from durable._client import Client
from durable._definitions import DefinitionSync
from durable._errors import UnknownWorkflowError
from durable.runtime._registry import Registry, WorkflowDef


class Stopping:
    """Set once the server is stopping: open event streams end then, rather than keep the
    server waiting for their runs. `set` is safe from a signal handler or another thread."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requested = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self._requested:
            self.set()

    def set(self) -> None:
        self._requested = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to end
                loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(slots=True)
class Services:
    client: Client
    registry: Registry
    definitions: DefinitionSync
    stopping: Stopping = field(default_factory=Stopping)

    async def find_workflow(self, name: str, version: str | None) -> WorkflowDef:
        """The workflow a start names; UnknownWorkflowError if no process registered it."""
        try:
            return self.registry.workflow(name, version)
        except UnknownWorkflowError:
            await self.definitions.sync()
            return self.registry.workflow(name, version)

    async def workflow_of(self, name: str, version: str) -> WorkflowDef | None:
        found = self.registry.get(name, version)
        if found is None:
            await self.definitions.sync()
            found = self.registry.get(name, version)
        return found
