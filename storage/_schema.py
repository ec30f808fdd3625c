"""The schema, defined once with SQLAlchemy Core and created through it for every SQL backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

# The version lives apart (no SQLAlchemy there): a current SQLite database opens without this
# module. 1: runs, events. 2: inbox, workers, the finished_at index (migrated by MIGRATION_2).
# 3: workflow definitions (MIGRATION_3). 4: a checksum per event (MIGRATION_4: the column, then
# the checksum of every existing event, computed by the backend's migration). 5: schedules
# (MIGRATION_5). 6: queues (MIGRATION_6). 7: issue 17's tables (MIGRATION_7_TABLES).
from storage._schema_version import SCHEMA_VERSION as SCHEMA_VERSION

metadata = MetaData()

runs = Table(
    "durable_runs",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("workflow", String(255), nullable=False),
    Column("version", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input", LargeBinary, nullable=False),
    Column("result", LargeBinary, nullable=True),
    Column("error", LargeBinary, nullable=True),
    Column("parent_run_id", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    # The seq of the newest event: the optimistic-concurrency check of every append.
    Column("last_seq", Integer, nullable=False),
    Column("owner", String(255), nullable=True),
    Column("epoch", Integer, nullable=False),
    Column("lease_expires_at", Float, nullable=True),
    # When an unfinished run should next be picked up (NULL: never on its own, e.g. finished).
    Column("ready_at", Float, nullable=True),
    # Queues (version 6): the queue a run waits in (NULL: none), its priority (higher first),
    # fairness partition, dedupe key, and when its queue admitted it (NULL: still waiting).
    Column("queue", String(255), nullable=True),
    Column("priority", Integer, nullable=True),
    Column("partition_key", String(255), nullable=True),
    Column("dedupe_key", String(255), nullable=True),
    Column("admitted_at", Float, nullable=True),
    Index("ix_durable_runs_claim", "status", "ready_at"),
    Index("ix_durable_runs_workflow", "workflow", "status"),
    Index("ix_durable_runs_created", "created_at", "run_id"),
    # prune_runs: the oldest finished runs first (NULL for unfinished runs).
    Index("ix_durable_runs_finished", "finished_at"),
    # Admission: a queue's waiting and admitted runs.
    Index("ix_durable_runs_queue", "queue", "status", "admitted_at"),
)
# A dedupe key names at most one unfinished run of its queue: the index is the arbiter when two
# starts race (a finished run leaves the index, freeing its key).
_LIVE_DEDUPE = (runs.c.dedupe_key.isnot(None)) & runs.c.status.in_(("pending", "running"))
Index(
    "ux_durable_runs_dedupe",
    runs.c.queue,
    runs.c.dedupe_key,
    unique=True,
    sqlite_where=_LIVE_DEDUPE,
    postgresql_where=_LIVE_DEDUPE,
)

events = Table(
    "durable_events",
    metadata,
    Column("run_id", String(255), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    # storage._checksum.event_checksum of (run_id, seq, type, data), verified by every read.
    # Nullable only because a release older than version 4 may still be appending while another
    # process migrates: such rows are read unchecked.
    Column("checksum", BigInteger, nullable=True),
    PrimaryKeyConstraint("run_id", "seq"),
    # Clustered by (run_id, seq): one run's history is one contiguous range read.
    sqlite_with_rowid=False,
)

schema_info = Table(
    "durable_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("note", Text, nullable=True),
)

# A run's inbox: signals, cancel requests, child completions (opaque to storage). Consumed items
# are deleted; AUTOINCREMENT on SQLite keeps ids from being reused after a delete.
inbox = Table(
    "durable_inbox",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("run_id", String(255), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("dedupe_key", String(255), nullable=True),
    Index("ix_durable_inbox_run", "run_id", "id"),
    sqlite_autoincrement=True,
)
# (run_id, dedupe_key) at most once, for keyed items only. ON CONFLICT names this index.
Index(
    "ux_durable_inbox_dedupe",
    inbox.c.run_id,
    inbox.c.dedupe_key,
    unique=True,
    sqlite_where=inbox.c.dedupe_key.isnot(None),
    postgresql_where=inbox.c.dedupe_key.isnot(None),
)

# Live workers and the (workflow, version) pairs they can execute, refreshed by heartbeat.
workers = Table(
    "durable_workers",
    metadata,
    Column("owner", String(255), primary_key=True),
    Column("capabilities", Text, nullable=False),  # JSON: [[workflow, version], ...]
    Column("started_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Workflow definitions registered through the API, shared by every process on the database.
# Immutable: (name, version) is one content, identified by its fingerprint.
definitions = Table(
    "durable_definitions",
    metadata,
    Column("name", String(255), nullable=False),
    Column("version", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("format", String(16), nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("name", "version"),
)

# Cron schedules: what each one is (written by the processes that declare it) and where it
# stands (paused, the next tick to handle), advanced by compare-and-set on `revision` so two
# workers never both handle a tick. Booleans are 0/1 integers, as every backend reads them.
schedules = Table(
    "durable_schedules",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("workflow", String(255), nullable=False),
    Column("cron", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("catchup", String(16), nullable=False),
    Column("catchup_limit", Integer, nullable=False),
    Column("grace", Float, nullable=False),
    Column("overlap", String(16), nullable=False),
    Column("paused", Integer, nullable=False),
    Column("next_tick", Float, nullable=True),  # the oldest tick not handled yet
    Column("last_tick", Float, nullable=True),
    Column("last_run_id", String(255), nullable=True),
    # 1: next_tick waits for the previous run to end (overlap policy "queue").
    Column("holding", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Queues declared by the application (durable.queues), upserted by every process declaring one
# and read by every claim; on PostgreSQL a queue's row is also the lock admissions take.
queues = Table(
    "durable_queues",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("concurrency", Integer, nullable=True),  # NULL: unlimited
    Column("worker_concurrency", Integer, nullable=True),
    Column("rate_limit", Integer, nullable=True),  # starts per rate_period seconds
    Column("rate_period", Float, nullable=True),
    Column("partition_concurrency", Integer, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# The chain of a continued run's histories (ctx.continue_as_new(); storage._history_ops): one
# row per generation, kept when the events of old histories are deleted.
histories = Table(
    "durable_histories",
    metadata,
    Column("run_id", String(255), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("first_seq", Integer, nullable=False),
    Column("last_seq", Integer, nullable=True),  # NULL: the run's current history
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    PrimaryKeyConstraint("run_id", "generation"),
)

# External waits (ctx.wait_external, storage._completions): one row per wait, inserted by the
# append that records it and settled exactly once by a conditional update of `status`
# (waiting -> completed / failed / timed_out). `nonce` is the secret part of the wait's token.
completions = Table(
    "durable_completions",
    metadata,
    Column("run_id", String(255), nullable=False),
    Column("pos", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("deadline", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("settled_at", Float, nullable=True),
    PrimaryKeyConstraint("run_id", "pos"),
)

# The latest value of each key a run set with ctx.set_event: a projection of its ValueSet
# events, written in the same commit as the event (so get_event is one indexed read). `seq` is
# the event's: an upsert only replaces an older value.
values = Table(
    "durable_values",
    metadata,
    Column("run_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

# Streams (version 7): the values a run publishes under a key, in order. `producer` names each
# write within the run (w<pos> from workflow code, s<pos>.<i> from a step body) and is unique
# per key: a retried step re-emitting its values writes each once. The close marker is a row
# with closed = 1 and no value.
streams = Table(
    "durable_streams",
    metadata,
    Column("run_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    # The value's offset: 1, 2, 3... per (run_id, key) ("offset" is an SQL keyword).
    Column("seq", Integer, nullable=False),
    Column("producer", String(64), nullable=False),
    Column("value", LargeBinary, nullable=True),
    Column("closed", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "key", "seq"),
    Index("ux_durable_streams_producer", "run_id", "key", "producer", unique=True),
)

# A DAG run's folded state as of one seq (durable._snapshot), so that resuming it reads the
# snapshot and the events after it instead of its whole log. One per run, replaced by newer
# ones; a cache: nothing is lost if it is missing, stale or damaged (the full fold is used).
snapshots = Table(
    "durable_snapshots",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("seq", Integer, nullable=False),  # the last event folded into it
    Column("fold_version", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("checksum", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

# What version 2 added to a version-1 database: whole tables (with their indexes) and indexes
# on tables version 1 already had. Each backend's migration creates exactly these.
MIGRATION_2_TABLES: tuple[Table, ...] = (inbox, workers)
MIGRATION_2_INDEXES: tuple[Index, ...] = tuple(
    i for i in runs.indexes if i.name == "ix_durable_runs_finished"
)

# What version 3 added to a version-2 database: the definitions table.
MIGRATION_3_TABLES: tuple[Table, ...] = (definitions,)

# What version 4 added to a version-3 database: the events' checksum column (then filled in).
MIGRATION_4_COLUMNS: tuple[Column[Any], ...] = (events.c.checksum,)

# What version 5 added to a version-4 database: the schedules table.
MIGRATION_5_TABLES: tuple[Table, ...] = (schedules,)

# What version 6 added to a version-5 database: the runs' queue columns, their indexes, and the
# queues table.
MIGRATION_6_COLUMNS: tuple[Column[Any], ...] = (
    runs.c.queue,
    runs.c.priority,
    runs.c.partition_key,
    runs.c.dedupe_key,
    runs.c.admitted_at,
)
MIGRATION_6_INDEXES: tuple[Index, ...] = tuple(
    sorted(
        (i for i in runs.indexes if i.name in ("ix_durable_runs_queue", "ux_durable_runs_dedupe")),
        key=lambda i: str(i.name),
    )
)
MIGRATION_6_TABLES: tuple[Table, ...] = (queues,)

# Version 7 (issue 17). Updates sent to runs (durable.interact._updates): one row per
# (run, update id) ever, the guard that makes an update exactly-once (a repeated id finds the
# row and never sends again), and what its callers read: requested -> accepted -> completed |
# failed, or requested -> rejected. Payload, result and error are msgpack (never pickle).
updates = Table(
    "durable_updates",
    metadata,
    Column("run_id", String(255), nullable=False),
    Column("update_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("result", LargeBinary, nullable=True),
    Column("error", LargeBinary, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "update_id"),
)

# What version 7 added to a version-6 database: issue 17's tables.
MIGRATION_7_TABLES: tuple[Table, ...] = (
    histories,
    completions,
    values,
    streams,
    snapshots,
    updates,
)
