"""DAG snapshots (durable._snapshot): the folded state, encoded and decoded, then the tail of the
log folded onto it, is the fold of the whole log, at every cut of real DAG logs (matrix, loop,
retries, skips, a cancel and a `durable retry`); a resume uses a usable snapshot and ignores
one of another FOLD_VERSION, with a bad checksum, or beyond the log."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import textwrap
import time
import typing
from pathlib import Path

import msgspec
import pytest

from durable._events import LoggedEvent, decode_record
from durable._recovery import load_state
from durable._snapshot import (
    FOLD_VERSION,
    _Run,
    _StepRow,
    decode_state,
    encode_state,
    make_snapshot,
    snapshot_checksum,
)
from durable._state import RunState, SignalState, StepState, WaitState, apply, fold
from durable.dag import parse_definition
from sdk import App
from storage import SnapshotRecord, Store

FLOW = """
name: snapped
tasks:
  a: {{script: "echo a"}}
  fan:
    matrix: {{n: [1, 2, 3, 4]}}
    script: "echo $N"
    environment: {{N: "{{{{ matrix.n }}}}"}}
    depends_on: [a]
  loop:
    code: "return ctx.iteration;"
    loop: {{until: "result >= 3", max_iterations: 5}}
  flaky:
    script: "test -f {flag} && echo ok || (touch {flag}; exit 1)"
    retries: 2
    retry_delay_ms: 10
  gated: {{script: "echo g", depends_on: [a], skip_if: "a.result.stdout.trim() === 'a'"}}
  slow:
    script: "test -f {go} && echo done || sleep 60"
    depends_on: [fan, loop, flaky]
"""


def shape() -> str:
    parts = []
    for cls in (RunState, StepState, WaitState, SignalState):
        parts += [f"{cls.__name__}.{f.name}:{f.type}" for f in dataclasses.fields(cls)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def test_the_state_shape_is_pinned_to_the_fold_version() -> None:
    """What FOLD_VERSION 1 means: the fields of the state it encodes. Changing any (or what
    apply() does) must bump FOLD_VERSION and update this digest."""
    assert (FOLD_VERSION, shape()) == (1, "6054ccd763bdce0e"), (
        "RunState's fields changed: bump durable._snapshot.FOLD_VERSION (old snapshots are then "
        "ignored), mirror the change in _Run/_StepRow there, and update this pin"
    )
    run_fields = [f.name for f in dataclasses.fields(RunState)]
    assert list(_Run.__struct_fields__) == run_fields
    assert len(typing.get_args(_StepRow)) == len(dataclasses.fields(StepState))


async def read_log(store: Store, run_id: str) -> list[LoggedEvent]:
    return [decode_record(r) for r in await store.read_events(run_id)]


def fold_onto(state: RunState, tail: list[LoggedEvent]) -> RunState:
    for logged in tail:
        apply(state, logged.seq, logged.at, logged.event)
    return state


async def wait_for_start(app: App, run_id: str, step: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = await app.events(run_id)
        if any(e.type == "StepStarted" and f"'{step}'" in repr(e.event) for e in events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"step {step!r} never started")


@pytest.fixture
async def logs(tmp_path: Path) -> tuple[App, list[str]]:
    """Two finished DAG runs: one straight, one cancelled in `slow` then retried."""
    go = tmp_path / "go"
    flow = textwrap.dedent(FLOW).format(flag=tmp_path / "flag", go=go)
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    return app, [flow, str(go)]


@pytest.mark.asyncio
async def test_snapshot_plus_tail_is_the_full_fold_at_every_cut(
    logs: tuple[App, list[str]],
) -> None:
    app, (flow, go) = logs
    async with app:
        name = app.register_dag(parse_definition(flow, "snapped.yaml"))
        handle = await app.start(name, None, run_id="cancelled")
        await wait_for_start(app, "cancelled", "slow")
        await app.cancel("cancelled")
        assert (await app.engine.client.wait("cancelled")).status == "cancelled"
        await asyncio.to_thread(Path(go).touch)
        await app.retry("cancelled")
        assert (await app.engine.client.wait("cancelled")).status == "succeeded"
        straight = await app.run_dag(name, None, run_id="straight", timeout=60)
        assert straight.status == "succeeded"
        store = app.engine.client.store
        histories = {rid: await read_log(store, rid) for rid in ("cancelled", "straight")}
    del handle
    types = {e.type for log in histories.values() for e in log}
    for expected in ("StepSkipped", "StepFailed", "CancelRequested", "RunCancelled", "RunResumed"):
        assert expected in types, expected
    for run_id, events in histories.items():
        whole = fold(run_id, events)
        assert whole.finished and whole.status == "succeeded"
        for k in range(1, len(events) + 1):
            head = fold(run_id, events[:k])
            data = encode_state(head)
            restored = decode_state(data)
            assert restored == head, (run_id, k)
            assert encode_state(restored) == data  # stable: the same state, the same bytes
            assert fold_onto(restored, events[k:]) == whole, (run_id, k, events[k - 1].type)


def doctored(state: RunState) -> RunState:
    """The state with a mark no fold would make: seen only if the snapshot was used."""
    changed = decode_state(encode_state(state))
    changed.cancel_reason = "from the snapshot"
    return changed


@pytest.mark.asyncio
async def test_a_resume_uses_a_usable_snapshot_and_ignores_the_others(tmp_path: Path) -> None:
    flow = textwrap.dedent(FLOW).format(flag=tmp_path / "flag", go=tmp_path / "go")
    await asyncio.to_thread((tmp_path / "go").touch)
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    async with app:
        name = app.register_dag(parse_definition(flow, "snapped.yaml"))
        assert (await app.run_dag(name, None, run_id="r", timeout=60)).status == "succeeded"
        store = app.engine.client.store
        events = await read_log(store, "r")
        whole = fold("r", events)
        cut = len(events) // 2
        head = doctored(fold("r", events[:cut]))
        assert head.last_seq == cut

        async def resumed_with(record: SnapshotRecord) -> RunState:
            await store.put_snapshot(record)  # each one newer than the last (seq + 1)
            return await load_state(store, "r", snapshot=True, last_seq=whole.last_seq)

        # Without a snapshot (or not asked to use one): the full fold.
        assert await load_state(store, "r", snapshot=True) == whole
        # Another fold version: ignored.
        data = encode_state(head)
        other = SnapshotRecord("r", cut, FOLD_VERSION + 1, data, 0, 1.0)
        other = msgspec.structs.replace(
            other, checksum=snapshot_checksum("r", cut, FOLD_VERSION + 1, data)
        )
        assert await resumed_with(other) == whole
        # A bad checksum: ignored.
        head = doctored(fold("r", events[: cut + 1]))
        good = make_snapshot(head, 1.0)
        assert (
            await resumed_with(msgspec.structs.replace(good, checksum=good.checksum ^ 1)) == whole
        )
        # Bytes that are not a state (with a matching checksum): ignored.
        junk = SnapshotRecord("r", cut + 2, FOLD_VERSION, b"\x93junk", 0, 1.0)
        junk = msgspec.structs.replace(
            junk, checksum=snapshot_checksum("r", cut + 2, FOLD_VERSION, b"\x93junk")
        )
        assert await resumed_with(junk) == whole
        # A usable one: used (its mark shows), the tail folded onto it.
        head = doctored(fold("r", events[: cut + 3]))
        used = await resumed_with(make_snapshot(head, 1.0))
        assert used.cancel_reason == "from the snapshot"
        assert dataclasses.replace(used, cancel_reason="") == whole
        # ...unless the run row says the log is shorter than its seq.
        assert await load_state(store, "r", snapshot=True, last_seq=cut) == whole


def test_a_state_with_updates_is_refused_not_encoded_wrong() -> None:
    """DAG runs (the only ones snapshotted) refuse updates; a state with one is refused
    clearly rather than encoded into a snapshot that would not decode back."""
    import msgspec

    from durable._snapshot import encode_state
    from durable._state import RunState
    from durable._state_updates import UpdateState

    state = RunState(run_id="r")
    state.updates["u"] = UpdateState("u", 3, "n", msgspec.Raw(b"\x90"), 7)
    with pytest.raises(ValueError, match="has updates: its state is not snapshotted"):
        encode_state(state)
