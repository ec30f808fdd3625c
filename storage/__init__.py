"""Persistence of runs and event logs. Knows nothing of what events mean; never imports
`durable` or `sdk`."""

from storage._errors import (
    DatabaseOpenError,
    DatabaseUnavailableError,
    DatabaseURLError,
    InvalidAppendError,
    LeaseLostError,
    RunNotFoundError,
    SequenceConflictError,
    StorageError,
    StoreClosedError,
)
from storage._memory import MemoryStore
from storage._postgres import PostgresStore
from storage._protocol import Store, WorkSignal
from storage._records import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Append,
    Claim,
    EventRecord,
    Fence,
    NewRun,
    Release,
    RunQuery,
    RunRecord,
    RunUpdate,
)
from storage._sqlite import SQLiteStore
from storage._url import DEFAULT_URL, open_store

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_URL",
    "FINAL_STATUSES",
    "Append",
    "Claim",
    "DatabaseOpenError",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "EventRecord",
    "Fence",
    "InvalidAppendError",
    "LeaseLostError",
    "MemoryStore",
    "NewRun",
    "PostgresStore",
    "Release",
    "RunNotFoundError",
    "RunQuery",
    "RunRecord",
    "RunUpdate",
    "SQLiteStore",
    "SequenceConflictError",
    "StorageError",
    "Store",
    "StoreClosedError",
    "WorkSignal",
    "open_store",
]
