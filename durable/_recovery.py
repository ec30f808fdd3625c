"""Loading a run's state to resume it: its log folded, from a snapshot when it has a usable one.

The read, the decoding and the fold build an object or more per event, all of which live on:
the cyclic collector is paused meanwhile (durable._gcpause), as its passes over them found
nothing to free and cost a quarter of the time.
"""

from __future__ import annotations

import logging

from durable._events import RunStarted, decode_event
from durable._gcpause import gc_paused
from durable._snapshot import usable_state
from durable._state import RunState, apply, starts_history
from storage import EventRecord, StorageError, Store

log = logging.getLogger("durable.recovery")


async def load_state(
    store: Store, run_id: str, *, snapshot: bool = False, last_seq: int | None = None
) -> RunState:
    """The fold of the run's log. With `snapshot`, its stored snapshot (if usable: see
    durable._snapshot) plus the events after it; `last_seq` (the run row's) bounds the seq a
    usable snapshot may have. CorruptEventError / EventChecksumError as read_events and
    decode_event raise them; a snapshot's failure to load only costs the full fold."""
    with gc_paused():
        state = None
        if snapshot:
            try:
                record = await store.get_snapshot(run_id)
            except StorageError as exc:
                log.warning("run %s: reading its snapshot failed (%s): full fold", run_id, exc)
                record = None
            state = usable_state(record, run_id, last_seq if last_seq is not None else 2**62)
        if state is not None:
            tail = await store.read_events(run_id, state.last_seq)
            if not tail or tail[0].seq == state.last_seq + 1:
                log.info(
                    "run %s: resumed from its snapshot at seq %d (%d events after it)",
                    run_id,
                    state.last_seq,
                    len(tail),
                )
                for stored in tail:
                    apply(state, stored.seq, stored.created_at, decode_event(stored))
                return state
            log.warning("run %s: its log has a gap after its snapshot: full fold", run_id)
        # The current history (ctx.continue_as_new(): a continued run's older ones are not
        # read; fold starts afresh at a continuing RunStarted anyway).
        return fold_records(run_id, await store.read_history(run_id))


def fold_records(run_id: str, records: list[EventRecord]) -> RunState:
    """durable._state.fold of the decoded records, without a LoggedEvent per event (a tenth
    of the decoding and folding of a long history went to making them)."""
    state = RunState(run_id=run_id)
    for record in records:
        event = decode_event(record)
        if type(event) is RunStarted and starts_history(event):
            state = RunState(run_id=run_id)
        apply(state, record.seq, record.created_at, event)
    return state
