"""Pausing Python's cyclic garbage collector while a run's history is loaded.

Recovering a long run builds hundreds of thousands of objects that all live on (records,
events, the folded state): each collection the allocations trigger walks them again, for
nothing (they hold no cycles to free), and that was a quarter of the recovery's time at 100k
events. Reference counting still frees everything dropped meanwhile; the collector runs again
as soon as the outermost pause ends. Used on the event loop's thread only (not thread-safe).

At the end, the objects allocated meanwhile go straight to the oldest generation (gc.freeze()
then gc.unfreeze(): two list splices) instead of being walked by the first young collection
after the pause (0.1 s per million objects): they are long-lived, and any cyclic garbage among
them is still found by the next full collection. (This also unfreezes objects something else
froze with gc.freeze(): nothing in durable does.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    if _depth == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()
