"""Cron schedules: a workflow run per tick, exactly once with any number of workers.

Modules, bottom first (each imports only those before it; tests/test_layers.py checks):
_cron (croniter: expressions, timezones, ticks), _spec (a schedule's declaration and its
policies), _plan (the next tick to handle: pure), _fire (overlap policy, the run, the
compare-and-set), _control (list, pause, resume, trigger, backfill), _loop (declaring and
firing in an engine).
"""

from durable.schedules._spec import CATCHUP, OVERLAP, Catchup, Overlap, ScheduleSpec

__all__ = ["CATCHUP", "OVERLAP", "Catchup", "Overlap", "ScheduleSpec"]
