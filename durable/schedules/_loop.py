"""The schedules of a process: declared in the store when the engine opens, fired by a loop
while it runs a worker.

Every worker fires the schedules it declares (its registry's): a schedule removed from the
code stops once no worker declares it, and one whose workflow a worker lacks is left to the
workers that have it. Many workers firing one schedule is safe (durable.schedules._fire).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from durable._codec import checked, encode_value
from durable._errors import ScheduleError, SerializationError
from durable.schedules._fire import fire_due, tick_input
from durable.schedules._spec import ScheduleSpec

if TYPE_CHECKING:
    from durable._client import Client

log = logging.getLogger("durable.schedules")

# The longest sleep between looks: a schedule paused, resumed or re-declared elsewhere, or a
# held tick whose previous run ended, is seen within this.
MAX_SLEEP = 1.0
MIN_SLEEP = 0.02


async def declare(client: Client, specs: list[ScheduleSpec]) -> None:
    """Write the declarations (insert, or update a changed spec; the state stays). A workflow
    that cannot take a tick as input is refused here, not at every tick."""
    hint = (
        "a scheduled run gets its tick as input ({'schedule': ..., 'scheduled_at': ...}); "
        "give the workflow a parameter for it, e.g. `tick: dict[str, Any]`"
    )
    for spec in specs:
        wf = client.registry.workflow(spec.workflow)
        where = f"schedule {spec.name!r}: workflow {spec.workflow!r}"
        if not wf.takes_input:
            raise ScheduleError(f"{where} takes no input, but {hint}")
        record = spec.record()
        if wf.dag is None:
            sample = encode_value(tick_input(record, time.time()), "a tick")
            try:
                checked(sample, wf.input_type, "its input")
            except SerializationError as exc:
                raise ScheduleError(f"{where}: {exc}; {hint}") from None
        await client.store.put_schedule(record)


async def run_schedules(client: Client, specs: dict[str, ScheduleSpec]) -> None:
    """Fire due ticks until cancelled. `specs` is read at each round: schedules added while
    the engine runs (app.add_schedule, a stored definition with `schedule:`) are declared
    and fired too."""
    declared = dict(specs)  # the engine declared these when it opened
    while True:
        sleep = MAX_SLEEP
        for name, spec in list(specs.items()):
            try:
                if declared.get(name) != spec:
                    await declare(client, [spec])
                    declared[name] = spec
                await fire_due(client, name)
                record = await client.store.get_schedule(name)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup or a bad row: the next round tries again
                log.warning("schedule %s: firing failed, retrying", name, exc_info=True)
                continue
            if record is not None and record.next_tick is not None and not record.paused:
                sleep = min(sleep, max(record.next_tick - time.time(), MIN_SLEEP))
        await asyncio.sleep(sleep)
