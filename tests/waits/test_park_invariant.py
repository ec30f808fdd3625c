"""The parking invariant, unit by unit (issue 14, section 1): Waits.park_problem names every
state a parked run could never be woken from, and Waits.repair ends the waits whose outcome
already arrived."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import pytest

from durable._state import SignalState, WaitState
from durable.runtime._executor import RunExecutor
from durable.runtime._waits import Waits

pytestmark = pytest.mark.asyncio


@dataclass
class FakeState:
    waits: dict[int, WaitState] = field(default_factory=dict)
    signals: dict[int, SignalState] = field(default_factory=dict)
    children: dict[str, Any] = field(default_factory=dict)
    # The fold's index of the signals no wait got yet (durable._state.RunState.unconsumed).
    unconsumed: dict[str, dict[int, None]] = field(default_factory=dict)
    child_waits: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class FakeExecutor:
    state: FakeState = field(default_factory=FakeState)
    log: Any = None


def waits_over(ex: FakeExecutor) -> Waits:
    return Waits(cast(RunExecutor, ex))


async def test_a_run_awaiting_a_signal_nobody_sent_may_park() -> None:
    ex = FakeExecutor()
    ex.state.waits[0] = WaitState(pos=0, kind="signal", signal="b")
    waits = waits_over(ex)
    waits.futures[0] = asyncio.get_running_loop().create_future()
    assert waits.park_problem() is None


async def test_states_that_must_not_park_are_named() -> None:
    loop = asyncio.get_running_loop()
    ex = FakeExecutor()
    waits = waits_over(ex)
    assert waits.park_problem() == "it awaits no durable wait"

    ex.state.waits[0] = WaitState(pos=0, kind="signal", signal="b")
    ended: asyncio.Future[Any] = loop.create_future()
    ended.set_result(None)
    waits.futures[0] = ended
    assert "has ended" in (waits.park_problem() or "")

    waits.futures[0] = loop.create_future()
    ex.state.signals[3] = SignalState(seq=3, name="b", payload=msgspec.Raw(b"\xc0"))
    ex.state.unconsumed["b"] = {3: None}
    assert "already received" in (waits.park_problem() or "")

    ex.state.signals.clear()
    ex.state.unconsumed.clear()
    ex.state.waits[1] = WaitState(pos=1, kind="child", child_run_id="k")
    waits.futures[1] = loop.create_future()
    ex.state.children["k"] = object()
    assert "child run already ended" in (waits.park_problem() or "")

    ex.state.children.clear()
    waits.futures[2] = loop.create_future()
    assert "not recorded" in (waits.park_problem() or "")


async def test_repair_ends_a_wait_whose_outcome_already_arrived() -> None:
    loop = asyncio.get_running_loop()
    ex = FakeExecutor()
    ex.state.waits[1] = WaitState(pos=1, kind="child", child_run_id="k")
    ex.state.children["k"] = object()
    waits = waits_over(ex)
    fut: asyncio.Future[Any] = loop.create_future()
    waits.futures[1] = fut
    waits.repair()
    assert fut.done()
