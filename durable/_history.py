"""The exported-history file format (`durable history export`, `durable replay --history`).

One JSON document per run. It is lossless: every event keeps the exact bytes the store holds
(msgpack, base64 in JSON) with its type tag, seq and timestamp, so a replay from the file sees
precisely what a replay from the database would. Next to each event is a decoded rendering for
people; it is never read back (the bytes are the truth, the rendering may improve).

The format name and version are checked before anything else is decoded, so a file of another
format or a future version is refused with a message that says which, not a schema error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from durable._errors import DurableError
from durable._events import LoggedEvent, decode_record
from storage import EventRecord

FORMAT = "durable.history"
VERSION = 1


class HistoryFormatError(DurableError):
    """A file that is not an exported history this version of durable can read."""


class ExportedRun(msgspec.Struct, frozen=True, kw_only=True):
    """The run row's facts. The raw_* fields are the stored msgpack bytes (lossless); input,
    result and error are their decoded rendering. Lease and owner are left out on purpose:
    they describe a worker on one machine, not the run."""

    run_id: str
    workflow: str
    version: str
    status: str
    parent_run_id: str | None = None
    created_at: float
    finished_at: float | None = None
    last_seq: int
    input: Any = None
    result: Any = None
    error: Any = None
    raw_input: bytes = b""
    raw_result: bytes | None = None
    raw_error: bytes | None = None


class ExportedEvent(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    at: float  # the stored timestamp (seconds since the epoch), exact
    type: str  # the stored type tag
    data: bytes  # the stored event record, msgpack (base64 in the JSON file)
    time: str = ""  # `at` as ISO 8601 UTC, for people
    decoded: dict[str, Any] = {}  # for people; ignored on import


class HistoryFile(msgspec.Struct, frozen=True, kw_only=True):
    format: str = FORMAT
    version: int = VERSION
    exported_by: str = ""
    run: ExportedRun
    events: list[ExportedEvent]

    def records(self) -> list[EventRecord]:
        return [EventRecord(self.run.run_id, e.seq, e.type, e.data, e.at) for e in self.events]

    def logged(self) -> list[LoggedEvent]:
        """The events decoded exactly as a store's records would be (same corruption checks)."""
        return [decode_record(r) for r in self.records()]


class _Header(msgspec.Struct):
    format: Any = None
    version: Any = None


def dumps(history: HistoryFile) -> bytes:
    return msgspec.json.format(msgspec.json.encode(history), indent=2) + b"\n"


def loads(data: bytes, where: str = "the file") -> HistoryFile:
    try:
        header = msgspec.json.decode(data, type=_Header)
    except msgspec.ValidationError:  # (a DecodeError too, so caught first)
        header = _Header()  # JSON, but not an object: reported as a missing format below
    except msgspec.DecodeError as exc:
        raise HistoryFormatError(f"{where} is not an exported history (not JSON: {exc})") from None
    if header.format != FORMAT:
        raise HistoryFormatError(
            f"{where} is not an exported history: its format is {header.format!r}, "
            f"expected {FORMAT!r} (write one with `durable history export`)"
        )
    if header.version != VERSION:
        raise HistoryFormatError(
            f"{where} is a {FORMAT} file of version {header.version!r}; this durable reads "
            f"version {VERSION} only"
        )
    try:
        history = msgspec.json.decode(data, type=HistoryFile)
    except msgspec.ValidationError as exc:
        raise HistoryFormatError(f"{where} is a damaged {FORMAT} file: {exc}") from None
    seqs = [e.seq for e in history.events]
    # A run that continued as new keeps only its latest histories: its seqs start later.
    first = seqs[0] if seqs else 1
    if first < 1 or seqs != list(range(first, first + len(seqs))):
        raise HistoryFormatError(f"{where} is a damaged {FORMAT} file: event seqs have gaps")
    return history


def read(path: str | Path) -> HistoryFile:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HistoryFormatError(f"cannot read history file {path}: {exc.strerror}") from None
    return loads(data, f"{path}")
