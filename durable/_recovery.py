"""Loading a run's state to resume it: its log folded, from a snapshot when it has a usable one.

The read, the decoding and the fold build an object or more per event, all of which live on:
the cyclic collector is paused meanwhile (durable._gcpause), as its passes over them found
nothing to free and cost a quarter of the time.
"""

from __future__ import annotations

import logging

from durable._events import decode_record
from durable._gcpause import gc_paused
from durable._snapshot import usable_state
from durable._state import RunState, apply, fold
from storage import StorageError, Store

log = logging.getLogger("durable.recovery")


async def load_state(
    store: Store, run_id: str, *, snapshot: bool = False, last_seq: int | None = None
) -> RunState:
    """The fold of the run's log. With `snapshot`, its stored snapshot (if usable: see
    durable._snapshot) plus the events after it; `last_seq` (the run row's) bounds the seq a
    usable snapshot may have. CorruptEventError / EventChecksumError as read_events and
    decode_record raise them; a snapshot's failure to load only costs the full fold."""
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
                for event in tail:
                    logged = decode_record(event)
                    apply(state, logged.seq, logged.at, logged.event)
                return state
            log.warning("run %s: its log has a gap after its snapshot: full fold", run_id)
        # The current history (ctx.continue_as_new(): a continued run's older ones are not
        # read; fold starts afresh at a continuing RunStarted anyway).
        records = await store.read_history(run_id)
        return fold(run_id, map(decode_record, records))
