"""How a worker runs: its settings, apart from the worker itself, so that the CLI and the
SDK can build and pass them without importing the worker (and the DAG interpreter with it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    lease_ttl: float = 15.0
    # Seconds between looks for claimable runs. None: 1 s, or 5 s on a store that wakes idle
    # workers itself (PostgreSQL's LISTEN/NOTIFY), where polling only finds expired leases.
    poll_interval: float | None = None
    max_concurrent_runs: int = 1000
    # Small enough that idle workers woken together share a burst of new runs between them,
    # large enough to amortize the claim round trip when a backlog is drained.
    claim_batch: int = 10
    step_threads: int = 32
    owner: str | None = None
    # A run that only waits (a timer, a signal, a child) for longer than this is put aside:
    # its lease is given back and the store wakes it when the wait can end, so waiting runs
    # cost rows, not memory. Shorter waits are waited for in memory.
    park_after: float = 1.0
    # ctx.continue_as_new(): how many histories before a run's current one keep their events
    # (for `durable events` and debugging); older ones are deleted, their chain kept.
    keep_histories: int = 1
    # A DAG run stores a snapshot of its folded state every this many events (at least;
    # durable._snapshot), so that resuming it folds only the events after it. 0: never.
    snapshot_every: int = 1000

    def __post_init__(self) -> None:
        if self.keep_histories < 0:
            raise ValueError("keep_histories must be >= 0")
        if self.lease_ttl <= 0 or (self.poll_interval is not None and self.poll_interval <= 0):
            raise ValueError("lease_ttl and poll_interval must be > 0")
        if self.max_concurrent_runs < 1 or self.claim_batch < 1 or self.step_threads < 1:
            raise ValueError("max_concurrent_runs, claim_batch and step_threads must be >= 1")
        if self.snapshot_every < 0:
            raise ValueError("snapshot_every must be >= 0 (0: no snapshots)")
