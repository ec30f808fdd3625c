"""The storage layer's error hierarchy.

Backends translate driver errors (sqlite3, aiosqlite, asyncpg) into these, so the engine and the
users never see a driver exception; the conformance tests check the translation.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by a store."""


class DatabaseURLError(StorageError, ValueError):
    """A database URL could not be understood."""


class DatabaseOpenError(StorageError):
    """The database could not be opened or created (path, permissions, corruption)."""


class DatabaseUnavailableError(StorageError):
    """The database stopped answering (locked for too long, connection lost)."""


class RunNotFoundError(StorageError, LookupError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class SequenceConflictError(StorageError):
    """An append expected a different last sequence number (another writer got there first)."""

    def __init__(self, run_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"run {run_id!r}: append expected last event seq {expected}, but the log is at {actual}"
        )
        self.run_id = run_id
        self.expected = expected
        self.actual = actual


class LeaseLostError(StorageError):
    """The writer's lease on the run is gone: another worker took it (fencing rejected a write)."""

    def __init__(
        self, run_id: str, owner: str, epoch: int, current_owner: str | None, current_epoch: int
    ) -> None:
        super().__init__(
            f"run {run_id!r}: lease epoch {epoch} of worker {owner!r} is stale "
            f"(now held by {current_owner!r} at epoch {current_epoch}); write rejected"
        )
        self.run_id = run_id
        self.owner = owner
        self.epoch = epoch
        self.current_owner = current_owner
        self.current_epoch = current_epoch


class RunStatusError(StorageError):
    """The run's status does not allow the operation (a run reopened while it succeeded)."""

    def __init__(
        self, run_id: str, status: str, expected: tuple[str, ...], *, action: str = "reopened"
    ) -> None:
        if len(expected) > 1:
            wanted = ", ".join(expected[:-1]) + " or " + expected[-1]
        else:
            wanted = expected[0] if expected else "in any allowed status"
        super().__init__(f"run {run_id!r} is {status}, not {wanted}: it cannot be {action}")
        self.run_id = run_id
        self.status = status
        self.expected = expected


class DedupeKeyHeldError(StorageError):
    """A queued run cannot be reopened: another unfinished run of its queue now holds its
    dedupe key (at most one may)."""

    def __init__(self, run_id: str, queue: str, dedupe_key: str, holder: str) -> None:
        super().__init__(
            f"run {run_id!r} cannot be reopened: run {holder!r} of queue {queue!r} now holds "
            f"its dedupe_key {dedupe_key!r} (queued or running); wait for {holder!r} to end "
            "or cancel it, then retry"
        )
        self.run_id = run_id
        self.queue = queue
        self.dedupe_key = dedupe_key
        self.holder = holder


class InvalidAppendError(StorageError, ValueError):
    """An append whose events are not numbered expected_last_seq+1, +2, ... for its run: a
    caller's bug. Refused before anything is written."""


class DefinitionConflictError(StorageError):
    """A workflow definition was put under a (name, version) already stored with another
    content: definitions are immutable, a changed one is a new version."""

    def __init__(
        self, name: str, version: str, existing_fingerprint: str, fingerprint: str
    ) -> None:
        super().__init__(
            f"workflow {name!r} version {version!r} is already stored with a different "
            f"definition (fingerprint {existing_fingerprint[:12]}, not {fingerprint[:12]}): "
            "register the change as a new version"
        )
        self.name = name
        self.version = version
        self.existing_fingerprint = existing_fingerprint
        self.fingerprint = fingerprint


class RunExistsError(StorageError):
    """Internal signal: create_run found an existing run with the id (handled by callers)."""


class StoreClosedError(StorageError):
    """The store was used after close() (or before open())."""


class EventChecksumError(StorageError):
    """A stored event no longer matches the checksum written with it: its payload or type tag
    was changed (disk damage, a bad copy, a hand edit) after it was recorded. Raised by every
    read that includes the event; the log is left untouched."""

    def __init__(self, run_id: str, seq: int, type: str, where: str, detail: str) -> None:
        super().__init__(
            f"run {run_id!r}: event #{seq} ({type}) in {where} is damaged: {detail}. The stored "
            "bytes changed after they were written; the run is left as it is: restore the "
            "database from a backup, or export the intact part of the history (the events "
            "before this one still read)"
        )
        self.run_id = run_id
        self.seq = seq
        self.type = type
