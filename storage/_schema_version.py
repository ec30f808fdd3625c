"""The schema's version and table names, without SQLAlchemy: opening a SQLite database whose
schema is current checks these with plain reads, so it never needs to load the schema's
definition (storage._schema) at all."""

from __future__ import annotations

# 1: runs, events. 2: inbox, workers, the finished_at index. 3: workflow definitions.
# 4: a checksum per event. 5: cron schedules. 6: queues. storage._schema says what each
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
    "durable_updates",
)
