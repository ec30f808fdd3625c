"""The schema's version and table names, without SQLAlchemy: opening a SQLite database whose
schema is current checks these with plain reads, so it never needs to load the schema's
definition (storage._schema) at all."""

from __future__ import annotations

# 1: runs, events. 2: inbox, workers, the finished_at index. 3: workflow definitions.
# 4: a checksum per event. 5: cron schedules. 6: queues. 7: talking to running workflows
# (issue 17: the chain of continued runs' histories, external completions, ...).
# 4: a checksum per event. 5: cron schedules. 6: queues. 7: issue 17's tables (streams).
# storage._schema says what each version added.
# 4: a checksum per event. 5: cron schedules. 6: queues. storage._schema says what each
# version added. 7: values, streams, requests, snapshots, histories (issue 17).
# version added. 7: values, streams, updates, completions, snapshots (issue 17).
SCHEMA_VERSION = 7

TABLES = (
    "durable_runs",
    "durable_events",
    "durable_schema",
    "durable_inbox",
    "durable_workers",
    "durable_definitions",
    "durable_schedules",
    "durable_queues",
    "durable_histories",
    "durable_completions",
    "durable_values",
    "durable_streams",
    "durable_snapshots",
    "durable_updates",
)

# The tables holding rows of one run besides its own row (keyed by run_id): what pruning a run
# deletes (storage._sqlite_ops.prune, storage._postgres_prune.PRUNE), the run's row last.
RUN_TABLES = (
    "durable_events",
    "durable_inbox",
    "durable_histories",
    "durable_completions",
    "durable_values",
    "durable_streams",
    "durable_snapshots",
    "durable_updates",
)
