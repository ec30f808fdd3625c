"""Queues: named limits on how many runs start, and how fast, across every worker.

A queued run is stored with its queue, priority, partition and dedupe key, and is only claimed
once its queue admits it (storage._queue_ops: admission is part of the claim, so it is as
durable and as shared between workers as the runs themselves).

Modules, bottom first (each imports only those before it; tests/test_layers.py checks):
_spec (a queue's declaration, checked, and its row), _options (a start's queue options,
checked against the declared queues), _control (list and show: limits, depth, why a run
waits), _declare (writing an engine's declarations to the store), _debounce (app.debounce:
a burst of calls starts one run, with the last input), _cancel (a waiting run cancelled ends
at once).
"""

from durable.queues._options import QueueStart
from durable.queues._spec import QueueSpec

__all__ = ["QueueSpec", "QueueStart"]
