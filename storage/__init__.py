"""Persistence of runs, event logs, run inboxes, the worker registry, workflow definitions and
schedules and queues.
Knows nothing of what events mean; never imports `durable` or `sdk`.

PostgresStore (asyncpg, SQLAlchemy) is loaded on first use: a SQLite application never pays
for it."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage._postgres import PostgresStore

from storage._completions import CompletionRecord, Settled
from storage._errors import (
    DatabaseOpenError,
    DatabaseUnavailableError,
    DatabaseURLError,
    DedupeKeyHeldError,
    DefinitionConflictError,
    EventChecksumError,
    InvalidAppendError,
    LeaseLostError,
    RunNotFoundError,
    RunStatusError,
    SequenceConflictError,
    StorageError,
    StoreClosedError,
)
from storage._history_ops import HistoryMark, HistoryRecord
from storage._memory import MemoryStore
from storage._protocol import RunChanges, Store, WorkSignal
from storage._queue_ops import QueuedRun, QueueRecord, QueueStats, RunQueue
from storage._records import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Append,
    Claim,
    DefinitionRecord,
    EventRecord,
    Fence,
    InboxItem,
    NewCompletion,
    NewInboxItem,
    NewRun,
    Release,
    RunQuery,
    RunRecord,
    RunUpdate,
    RunValue,
    SnapshotRecord,
    StreamRecord,
    StreamRow,
    WorkerRecord,
)
from storage._schedule_ops import ScheduleRecord
from storage._sqlite import SQLiteStore
from storage._streams_ops import StreamClosedError, StreamKey
from storage._update_records import NewUpdate, UpdateChange, UpdateRecord
from storage._updates_ops import UPDATE_ITEM_KIND, UpdateRequested
from storage._url import DEFAULT_URL, open_store

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_URL",
    "FINAL_STATUSES",
    "UPDATE_ITEM_KIND",
    "Append",
    "Claim",
    "CompletionRecord",
    "DatabaseOpenError",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "DedupeKeyHeldError",
    "DefinitionConflictError",
    "DefinitionRecord",
    "EventChecksumError",
    "EventRecord",
    "Fence",
    "HistoryMark",
    "HistoryRecord",
    "InboxItem",
    "InvalidAppendError",
    "LeaseLostError",
    "MemoryStore",
    "NewCompletion",
    "NewInboxItem",
    "NewRun",
    "NewUpdate",
    "PostgresStore",
    "QueueRecord",
    "QueueStats",
    "QueuedRun",
    "Release",
    "RunChanges",
    "RunNotFoundError",
    "RunQuery",
    "RunQueue",
    "RunRecord",
    "RunStatusError",
    "RunUpdate",
    "RunValue",
    "SQLiteStore",
    "ScheduleRecord",
    "SequenceConflictError",
    "Settled",
    "SnapshotRecord",
    "StorageError",
    "Store",
    "StoreClosedError",
    "StreamClosedError",
    "StreamKey",
    "StreamRecord",
    "StreamRow",
    "UpdateChange",
    "UpdateRecord",
    "UpdateRequested",
    "WorkSignal",
    "WorkerRecord",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from storage._postgres import PostgresStore

        globals()[name] = PostgresStore
        return PostgresStore
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
