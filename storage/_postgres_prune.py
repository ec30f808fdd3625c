"""PostgreSQL's prune: finished runs deleted with every row they own, in one statement."""

from __future__ import annotations

from storage._postgres_ops import _ACTIVE, _FINAL_SQL
from storage._schema_version import RUN_TABLES

# Oldest finished first; rows being written (locked) are left for the next call. The parent
# check takes no lock: a finished parent becomes unfinished again only by reopen_run (durable
# retry), and a prune whose snapshot predates that commit may still delete its finished
# children (the parent's own log and inbox are untouched). Every table with rows of the run
# (storage._schema_version.RUN_TABLES) loses them in the same statement.
PRUNE = """
WITH c AS (
    SELECT r.run_id FROM durable_runs AS r
    WHERE r.status IN {final} AND r.finished_at < $1
        AND NOT EXISTS (
            SELECT 1 FROM durable_runs AS p
            WHERE p.run_id = r.parent_run_id AND p.status IN {active}
        )
    ORDER BY r.finished_at, r.run_id
    LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
{deletes}), d AS (
    DELETE FROM durable_runs WHERE run_id IN (SELECT run_id FROM c) RETURNING 1
)
SELECT count(*) FROM d
""".format(
    final=_FINAL_SQL,
    active=_ACTIVE,
    deletes="".join(
        f"), p{i} AS (\n    DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM c)\n"
        for i, table in enumerate(RUN_TABLES)
    ),
)
