"""durable._gcpause: the collector is off inside a pause and on after it; pauses of tasks that
overlap do not chain (the collector resumes when the first ends), and a collector someone else
turned off stays off."""

from __future__ import annotations

import asyncio
import gc

from durable._gcpause import gc_paused


async def test_overlapping_pauses_end_with_the_first() -> None:
    assert gc.isenabled()
    first_in, first_out, second_in = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[tuple[str, bool]] = []

    async def first() -> None:
        with gc_paused():
            seen.append(("first inside", gc.isenabled()))
            first_in.set()
            await second_in.wait()
        seen.append(("first after", gc.isenabled()))
        first_out.set()

    async def second() -> None:
        await first_in.wait()
        with gc_paused():
            second_in.set()
            await first_out.wait()
            seen.append(("second inside, first ended", gc.isenabled()))
        seen.append(("second after", gc.isenabled()))

    await asyncio.gather(first(), second())
    assert seen == [
        ("first inside", False),
        ("first after", True),
        ("second inside, first ended", True),
        ("second after", True),
    ]


def test_what_a_pause_allocated_is_not_left_to_a_young_collection() -> None:
    with gc_paused():
        kept = [[i] for i in range(50_000)]
    assert gc.isenabled()
    assert gc.get_count()[0] < 1000  # promoted at the end, not counted against generation 0
    assert len(kept) == 50_000


def test_a_collector_turned_off_elsewhere_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
