"""The checksum stored with every event, and its check on every read.

CRC-32 (zlib, C speed: well under a microsecond for a typical event) over the run id, the seq,
the type tag and the payload bytes, so a changed payload, a changed tag and a payload moved to
another event are all caught. It detects damage and edits made without durable (a flipped bit,
a bad copy or restore, a hand-written UPDATE); it is not a signature: whoever can write the
database can also write a matching checksum.

A NULL checksum is accepted unchecked: only a durable release older than schema version 4,
still running while another process migrated the database, can write one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from storage._errors import EventChecksumError
from storage._records import EventRecord


def event_checksum(run_id: str, seq: int, tag: str, data: bytes) -> int:
    """The checksum of one event (its type tag, payload and place): an unsigned 32-bit int."""
    head = f"{run_id}\x00{seq}\x00{tag}\x00".encode()
    return zlib.crc32(data, zlib.crc32(head))


def checksum_of(event: EventRecord) -> int:
    return event_checksum(event.run_id, event.seq, event.type, event.data)


def verified(run_id: str, rows: Iterable[Sequence[Any]], where: str) -> list[EventRecord]:
    """Rows of (seq, type, data, created_at, checksum) of the run `run_id` as records, each
    checked. (The run id is not read back: one history is one run's, and a string per row
    was a sixth of the read.)

    The same CRC as event_checksum, computed incrementally: the run id's part once, then per
    row its seq and tag and payload. A mismatch goes to check() for the error message."""
    records: list[EventRecord] = []
    add = records.append
    crc32 = zlib.crc32
    head = crc32(f"{run_id}\x00".encode())
    for seq, tag, data, created_at, checksum in rows:
        if checksum is not None and (
            type(data) is not bytes
            or checksum != crc32(data, crc32(f"{seq}\x00{tag}\x00".encode(), head))
        ):
            check(run_id, seq, tag, data, checksum, where)
        add(EventRecord(run_id, seq, tag, data, created_at))
    return records


def check(run_id: str, seq: int, tag: str, data: object, checksum: int, where: str) -> None:
    """Raise EventChecksumError unless the event's fields match its stored checksum."""
    if not isinstance(data, bytes):
        kind = "missing" if data is None else f"stored as {type(data).__name__}, not bytes"
        raise EventChecksumError(run_id, seq, tag, where, f"its payload is {kind}")
    actual = event_checksum(run_id, seq, tag, data)
    if actual != checksum:
        raise EventChecksumError(
            run_id,
            seq,
            tag,
            where,
            f"its type tag or its {len(data)} payload bytes do not match the checksum written "
            f"with them (stored {checksum:08x}, now {actual:08x})",
        )
