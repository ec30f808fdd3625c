"""The schema, defined once with SQLAlchemy Core and created through it for every SQL backend."""

from __future__ import annotations

from sqlalchemy import (
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

SCHEMA_VERSION = 1

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
    Index("ix_durable_runs_claim", "status", "ready_at"),
    Index("ix_durable_runs_workflow", "workflow", "status"),
    Index("ix_durable_runs_created", "created_at", "run_id"),
)

events = Table(
    "durable_events",
    metadata,
    Column("run_id", String(255), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
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
