"""Pausing Python's cyclic garbage collector while a run's history is loaded.

Recovering a long run builds hundreds of thousands of objects that all live on (records,
events, the folded state): each collection the allocations trigger walks them again, for
nothing (they hold no cycles to free), and that was a quarter of the recovery's time at 100k
events. Reference counting still frees everything dropped meanwhile; the collector runs again
as soon as the pause ends. Used on the event loop's thread only (not thread-safe).

The objects allocated meanwhile are left to the collector's usual generations when it resumes.
Moving them straight to the oldest one (gc.freeze() then gc.unfreeze()) saved the first young
collection's walk (0.1 s per million objects) but kept the garbage of every resume (the
executors and states of runs parked since) from ever being collected: a worker parking 10,000
sleeping runs grew by 160 MB instead of 3 MB (tests/versions/test_sleepers.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_active = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the collector for the block. Pauses of several tasks (a worker resuming runs at
    once, API requests) do not chain: a block entered while another pause is on runs without
    one of its own, and the collector resumes when the pause that began first ends, so it is
    never off for longer than one load, however busy the process."""
    global _active
    if _active or not gc.isenabled():  # another pause is on, or the collector is off anyway
        yield
        return
    _active = True
    gc.disable()
    try:
        yield
    finally:
        _active = False
        gc.enable()
