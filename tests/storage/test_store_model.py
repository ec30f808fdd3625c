"""A Hypothesis state machine: random sequences of store operations against a plain model.

The model is the protocol written as the simplest possible Python (lists and fields); after every
step the store must agree with it on every run's log and row. It runs against every backend in
conftest.BACKENDS, with a fresh store (a fresh file, for SQLite) per example.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import pytest
from conftest import StoreFactory
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from storekit import T0, conflict, lease_lost

from storage import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Append,
    EventRecord,
    Fence,
    LeaseLostError,
    NewRun,
    Release,
    RunNotFoundError,
    RunQuery,
    RunRecord,
    RunUpdate,
    SequenceConflictError,
    Store,
)

T = TypeVar("T")
E = TypeVar("E", bound=Exception)
FenceKind = Literal["current", "stale", "other"]

# Few ids, owners and versions, so that operations collide often: collisions are the point.
RUN_IDS = ("r0", "r1", "r2")
OWNERS = ("w1", "w2", "w3")
VERSIONS = (("wf", "v1"), ("wf", "v2"))

run_ids = st.sampled_from(RUN_IDS)
owners = st.sampled_from(OWNERS)
ttls = st.sampled_from([5.0, 20.0])
# Mostly no status change: a run that finishes early leaves nothing to lease.
statuses = st.sampled_from([None, None, None, None, "running", "succeeded", "failed"])
id_subsets = st.lists(st.sampled_from(RUN_IDS), unique=True, max_size=2)
eligibles = st.sampled_from([None, None, [], [VERSIONS[0]], list(VERSIONS)])
fence_kinds: st.SearchStrategy[FenceKind] = st.sampled_from(
    ["current", "current", "stale", "other"]
)


@dataclass
class ModelRun:
    workflow: str
    version: str
    created_at: float
    log: list[EventRecord]
    status: str
    owner: str | None
    epoch: int
    lease: float | None
    ready_at: float | None
    updated_at: float = field(init=False)

    def __post_init__(self) -> None:
        self.updated_at = self.created_at

    @property
    def last_seq(self) -> int:
        return self.log[-1].seq


class StoreMachine(RuleBasedStateMachine):
    # Ids of created runs: rules that need a run draw from here instead of guessing.
    runs = Bundle("runs")

    def __init__(self, factory: StoreFactory) -> None:
        super().__init__()
        # The SQLite store binds its writer to the loop that opened it: one loop per machine.
        self.loop = asyncio.new_event_loop()
        self.store: Store = factory()
        self.call(self.store.open)
        self.model: dict[str, ModelRun] = {}
        self.now = T0
        self.stamp = 0

    def teardown(self) -> None:
        try:
            self.call(self.store.close)
        finally:
            self.loop.close()

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        # Store writes must be *issued* inside the running loop too (they create futures on it),
        # hence a thunk rather than an awaitable built out here.
        async def inside() -> T:
            return await make()

        return self.loop.run_until_complete(inside())

    def events(self, run_id: str, after: int, count: int) -> tuple[EventRecord, ...]:
        self.stamp += 1  # unique data per append, so a wrong winner shows up in the log
        return tuple(
            EventRecord(run_id, after + i, "E", b"%d:%d" % (self.stamp, i), self.now)
            for i in range(1, count + 1)
        )

    def apply(self, app: Append) -> None:
        m = self.model[app.run_id]
        m.log.extend(app.events)
        m.updated_at = app.events[-1].created_at
        if app.update is not None and app.update.status is not None:
            m.status = app.update.status
            if m.status in FINAL_STATUSES:
                m.ready_at = None

    def fence(self, m: ModelRun, kind: FenceKind) -> Fence:
        holder = m.owner or "w1"
        if kind == "current":
            return Fence(holder, m.epoch)
        if kind == "stale":
            return Fence(holder, m.epoch - 1)
        return Fence(next(o for o in OWNERS if o != holder), m.epoch)

    # ------------------------------------------------------------------ rules

    @rule(
        target=runs,
        run_id=run_ids,
        owner=st.none() | owners,
        pair=st.sampled_from(VERSIONS),
        ttl=ttls,
        skew=st.sampled_from([0.0, 0.0, 8.0]),
    )
    def create(
        self, run_id: str, owner: str | None, pair: tuple[str, str], ttl: float, skew: float
    ) -> MultipleResults[str] | str:
        # created_at comes from the creator's clock, which may run ahead of the claimer's: the
        # run is not ready before then.
        created_at = self.now + skew
        lease = self.now + ttl if owner else None
        new = NewRun(run_id, pair[0], pair[1], b"in", created_at, None, owner, lease)
        first = EventRecord(run_id, 1, "Started", b"start@%d" % self.stamp, created_at)
        row, created = self.call(lambda: self.store.create_run(new, first))
        existing = self.model.get(run_id)
        assert created is (existing is None)
        if existing is not None:
            assert (row.last_seq, row.epoch, row.owner) == (
                existing.last_seq,
                existing.epoch,
                existing.owner,
            )
            return multiple()
        status = "running" if owner else "pending"
        self.model[run_id] = ModelRun(
            pair[0],
            pair[1],
            created_at,
            [first],
            status,
            owner,
            1 if owner else 0,
            lease,
            created_at,
        )
        return run_id

    @rule(run_id=runs, count=st.integers(1, 3), status=statuses)
    def append(self, run_id: str, count: int, status: str | None) -> None:
        m = self.model[run_id]
        update = RunUpdate(status=status) if status else None
        app = Append(run_id, self.events(run_id, m.last_seq, count), m.last_seq, None, update)
        self.call(lambda: self.store.append(app))
        self.apply(app)

    @rule(kind=st.none() | fence_kinds)
    def append_to_unknown_run(self, kind: FenceKind | None) -> None:
        fence = None if kind is None else Fence("w1", 1)
        ghost = Append("ghost", self.events("ghost", 0, 1), 0, fence)
        err = self.expect(RunNotFoundError, ghost, "no run with id 'ghost'")
        assert err.run_id == "ghost"

    @rule(run_id=runs, delta=st.sampled_from([-2, -1, 1, 3]), status=statuses)
    def append_wrong_seq(self, run_id: str, delta: int, status: str | None) -> None:
        m = self.model[run_id]
        expected = m.last_seq + delta
        app = Append(run_id, self.events(run_id, expected, 1), expected, None, RunUpdate(status))
        err = self.expect(SequenceConflictError, app, conflict(run_id, expected, m.last_seq))
        assert (err.expected, err.actual) == (expected, m.last_seq)

    @rule(run_id=runs, writers=st.integers(2, 5))
    def concurrent_appends(self, run_id: str, writers: int) -> None:
        m = self.model[run_id]
        apps = [
            Append(run_id, self.events(run_id, m.last_seq, 1), m.last_seq) for _ in range(writers)
        ]

        async def issue_all_then_wait() -> list[BaseException | None]:
            futures = [self.store.append(a) for a in apps]
            return await asyncio.gather(*futures, return_exceptions=True)

        outcomes = self.call(issue_all_then_wait)
        # Writes to one run apply in issue order, so the first is the one winner.
        assert outcomes[0] is None, outcomes
        assert all(isinstance(o, SequenceConflictError) for o in outcomes[1:]), outcomes
        self.apply(apps[0])

    @rule(run_id=runs, kind=fence_kinds, count=st.integers(1, 2), status=statuses)
    def fenced_append(self, run_id: str, kind: FenceKind, count: int, status: str | None) -> None:
        m = self.model[run_id]
        fence = self.fence(m, kind)
        update = RunUpdate(status=status) if status else None
        app = Append(run_id, self.events(run_id, m.last_seq, count), m.last_seq, fence, update)
        if (m.owner, m.epoch) != (fence.owner, fence.epoch):
            lost = lease_lost(run_id, fence.owner, fence.epoch, m.owner, m.epoch)
            err = self.expect(LeaseLostError, app, lost)
            assert (err.current_owner, err.current_epoch) == (m.owner, m.epoch)
            return
        self.call(lambda: self.store.append(app))
        self.apply(app)

    @rule(
        owner=owners,
        limit=st.sampled_from([0, 1, 3]),
        ttl=ttls,
        eligible=eligibles,
        exclude=id_subsets,
    )
    def claim(
        self,
        owner: str,
        limit: int,
        ttl: float,
        eligible: list[tuple[str, str]] | None,
        exclude: list[str],
    ) -> None:
        now = self.now
        candidates = {
            run_id
            for run_id, m in self.model.items()
            if m.status in ACTIVE_STATUSES
            and (m.owner is None or (m.lease is not None and m.lease < now))
            and m.ready_at is not None
            and m.ready_at <= now
            and (eligible is None or (m.workflow, m.version) in eligible)
            and run_id not in exclude
        }
        claims = self.call(
            lambda: self.store.claim_runs(
                owner, limit=limit, lease_ttl=ttl, now=now, eligible=eligible, exclude=exclude
            )
        )
        ids = [c.run.run_id for c in claims]
        # Which candidates win when there are more than `limit` is the backend's choice.
        assert len(ids) == len(set(ids)) == min(limit, len(candidates)), (ids, candidates)
        assert set(ids) <= candidates, (ids, candidates)
        for c in claims:
            m = self.model[c.run.run_id]
            m.owner, m.epoch, m.lease = owner, m.epoch + 1, now + ttl
            assert c.fence == Fence(owner, m.epoch)
            assert (c.run.owner, c.run.epoch, c.run.lease_expires_at) == (owner, m.epoch, m.lease)

    @rule(owner=owners, ttl=ttls, only=st.none() | id_subsets)
    def renew(self, owner: str, ttl: float, only: list[str] | None) -> None:
        mine = [
            m
            for run_id, m in self.model.items()
            if m.owner == owner and m.status in ACTIVE_STATUSES and (only is None or run_id in only)
        ]
        count = self.call(
            lambda: self.store.renew_leases(owner, lease_ttl=ttl, now=self.now, run_ids=only)
        )
        assert count == len(mine)
        for m in mine:
            m.lease = self.now + ttl

    @rule(run_id=runs, kind=fence_kinds, delay=st.none() | st.sampled_from([0.0, 10.0]))
    def release(self, run_id: str, kind: FenceKind, delay: float | None) -> None:
        m = self.model[run_id]
        fence = self.fence(m, kind)
        ready_at = None if delay is None else self.now + delay
        self.call(lambda: self.store.release_leases([Release(run_id, fence, ready_at)]))
        if (m.owner, m.epoch) != (fence.owner, fence.epoch):
            return  # a stale or foreign release changes nothing
        m.owner = m.lease = None
        if m.status in ACTIVE_STATUSES:
            m.ready_at = m.created_at if ready_at is None else ready_at

    @rule(dt=st.sampled_from([1.0, 6.0, 25.0]))
    def advance_time(self, dt: float) -> None:
        self.now += dt

    def expect(self, error: type[E], app: Append, message: str) -> E:
        """The store refuses `app` with `error`, whose message is (the pattern) `message`."""
        with pytest.raises(error, match=f"^{message}$") as info:
            self.call(lambda: self.store.append(app))
        return info.value

    # ------------------------------------------------------------------ invariants

    @invariant()
    def logs_and_rows_match_the_model(self) -> None:
        async def snapshot() -> list[tuple[list[EventRecord], RunRecord | None]]:
            return [(await self.store.read_events(r), await self.store.get_run(r)) for r in RUN_IDS]

        for run_id, (log, row) in zip(RUN_IDS, self.call(snapshot), strict=True):
            m = self.model.get(run_id)
            if m is None:
                assert (log, row) == ([], None)
                continue
            assert log == m.log
            expected = (m.last_seq, m.status, m.owner, m.epoch, m.lease, m.ready_at, m.updated_at)
            assert row is not None
            actual = (
                row.last_seq,
                row.status,
                row.owner,
                row.epoch,
                row.lease_expires_at,
                row.ready_at,
                row.updated_at,
            )
            assert actual == expected

    @invariant()
    def listing_is_newest_first(self) -> None:
        rows = self.call(lambda: self.store.list_runs(RunQuery(limit=len(RUN_IDS))))
        want = sorted(self.model, key=lambda r: (self.model[r].created_at, r), reverse=True)
        assert [r.run_id for r in rows] == want


def test_store_matches_model(store_factory: StoreFactory) -> None:
    # The function form (not Machine.TestCase) lets the backend fixture pick the store; hypothesis
    # wants a machine class, so one is bound to this test's factory.
    class Machine(StoreMachine):
        def __init__(self) -> None:
            super().__init__(store_factory)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=100,
            stateful_step_count=50,
            deadline=None,
            # No example database: it would leave a .hypothesis directory in the repository.
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
