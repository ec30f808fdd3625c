"""What the API's route handlers share: the engine's client, the registry and the stored
definitions (reloaded on a miss: another API process may have just registered one)."""

from __future__ import annotations

from dataclasses import dataclass

from durable._client import Client
from durable._definitions import DefinitionSync
from durable._errors import UnknownWorkflowError
from durable._registry import Registry, WorkflowDef


@dataclass(slots=True)
class Services:
    client: Client
    registry: Registry
    definitions: DefinitionSync

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
