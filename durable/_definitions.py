"""Workflow definitions stored in the database, next to the runs that use them.

The HTTP API registers DAG definitions (003's JSON) with `store_definition`; every process on
the database (API processes, workers) loads them into its registry with `DefinitionSync`, so a
definition registered through one API process can be started through another and executed by
any worker. A stored definition is immutable: (name, version) names one content, and
registering changed content without a version creates the next version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING

import msgspec

from durable._errors import WorkflowDefinitionError
from durable.dag._model import DagDefinition
from durable.dag._program import DagProgram
from durable.runtime._registry import Registry, WorkflowDef
from storage import DefinitionConflictError, DefinitionRecord, Store

if TYPE_CHECKING:
    from durable.dag._load import Format

log = logging.getLogger("durable")


def content_fingerprint(definition: DagDefinition) -> str:
    """What the definition does, whatever version it is registered under; with the queues it
    declares and its default queue, if any (not part of a run's fingerprint, but a definition
    posted again with other limits is other content, not the stored one again)."""
    base = msgspec.structs.replace(definition, version="").fingerprint()
    if not definition.queues and definition.queue is None:
        return base
    extra = msgspec.json.encode([definition.queues, definition.queue], order="sorted")
    return hashlib.sha256(base.encode() + extra).hexdigest()


def _explicit_version(text: str, fmt: Format) -> str | None:
    if fmt != "json":
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return None if version is None else str(version)


def _next_version(stored: list[DefinitionRecord]) -> str:
    numbers = [int(r.version) for r in stored if r.version.isdigit()]
    return str(max(numbers, default=0) + 1)


async def store_definition(
    store: Store, registry: Registry, text: str, fmt: Format = "json"
) -> tuple[WorkflowDef, bool]:
    """Validate a definition and store it; (its workflow, whether it is new). Content already
    stored under the workflow's name is that version again (not new). With an explicit
    `version`, content different from what that version holds is refused
    (DefinitionConflictError); without one, changed content becomes the next version.
    Raises DagDefinitionError (with the path of every problem) for an invalid definition."""
    from durable.dag._load import parse_definition  # the parsers and validator: when used

    definition = parse_definition(text, None, format=fmt, known_actions=registry.actions)
    from durable.dag._problems import DagDefinitionError
    from durable.dag._queued import declared_queues

    _, wrong = declared_queues(definition, registry.queues)  # refused before it is stored
    if wrong:
        raise DagDefinitionError(wrong)
    fingerprint = content_fingerprint(definition)
    explicit = _explicit_version(text, fmt)
    if len(definition.name) > 255 or (explicit is not None and len(explicit) > 64):
        raise WorkflowDefinitionError(
            "a workflow id is at most 255 characters and a version at most 64 "
            "(the database stores no more)"
        )
    for _ in range(5):  # another API process may take the version we computed: try the next
        stored = await store.list_definitions(definition.name)
        same = [r for r in stored if r.fingerprint == fingerprint]
        if explicit is None and same:
            wf = _load(registry, same[-1])
            await declare_queues(store, registry, wf)
            return wf, False
        version = explicit if explicit is not None else _next_version(stored)
        code = registry.get(definition.name, version)
        if code is not None and code.dag is None:
            raise WorkflowDefinitionError(
                f"workflow {definition.name!r} version {version!r} is Python code in this "
                "application; register the definition under another name or version"
            )
        record = DefinitionRecord(
            name=definition.name,
            version=version,
            fingerprint=fingerprint,
            format=fmt,
            source=text,
            created_at=time.time(),
        )
        try:
            found, created = await store.put_definition(record)
        except DefinitionConflictError:
            if explicit is not None:
                raise
            continue
        wf = _load(registry, found)
        await declare_queues(store, registry, wf)
        return wf, created
    raise WorkflowDefinitionError(
        f"could not find a free version for workflow {definition.name!r}: too many "
        "concurrent registrations; try again"
    )


async def declare_queues(store: Store, registry: Registry, wf: WorkflowDef) -> None:
    """Write the queues a stored definition declares (`queues:`) to the store: the claim
    admits only by stored queues, and this process's engine declared its own when it opened,
    before the definition was loaded."""
    if wf.dag is None or not wf.dag.definition.queues:
        return
    from durable.queues._declare import declare

    await declare(store, [registry.queues[n] for n in wf.dag.definition.queues])


def _load(registry: Registry, record: DefinitionRecord) -> WorkflowDef:
    known = registry.get(record.name, record.version)
    if known is not None:
        return known
    fmt: Format = "yaml" if record.format == "yaml" else "json"
    from durable.dag._load import parse_definition

    definition = parse_definition(record.source, None, format=fmt, known_actions=registry.actions)
    definition = msgspec.structs.replace(definition, version=record.version)
    return registry.add_dag(DagProgram(definition))


class DefinitionSync:
    """Keeps a registry up to date with the definitions stored in the database. Cheap to call
    often: one count query, and a full read only when the count changed."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._count = -1
        self._refused: set[tuple[str, str]] = set()

    async def sync(self) -> None:
        count = await self.store.count_definitions()
        if count == self._count:
            return
        for record in await self.store.list_definitions():
            key = (record.name, record.version)
            if key in self._refused or self.registry.get(*key) is not None:
                continue
            try:
                wf = _load(self.registry, record)
            except WorkflowDefinitionError as exc:
                # e.g. it uses an action this process does not have: other processes may.
                self._refused.add(key)
                log.warning("stored workflow %s@%s not loaded here: %s", *key, exc)
                continue
            try:
                await declare_queues(self.store, self.registry, wf)
            except Exception:  # a read-only database: the processes that can write declare
                log.warning("stored workflow %s@%s: could not declare its queues", *key)
        self._count = count
