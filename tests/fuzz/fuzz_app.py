"""The one workflow the fuzzer runs: an interpreter of fuzz_program's AST, whose program is the
run's input. The worker subprocess (fuzz_worker.py), the driver and the crash-free reference all
build their App here, so every process registers the same definitions.

Every step body appends "run_id pos attempt node pid time" to the effects file (one O_APPEND
write, so lines of concurrent steps and processes never interleave; no fsync: SIGKILL loses
nothing the kernel has) before doing anything else: the harness counts executions from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable
from typing import Any

from fuzz_program import (
    RIVAL_SLEEP,
    SIGNAL_TIMEOUT_LONG,
    Child,
    Gather,
    Hold,
    Raise,
    Select,
    Seq,
    Signal,
    Sleep,
    Step,
    Try,
    child_run_id,
    from_json,
    to_json,
)

from sdk import App, ChildRunFailed, Context, RetryPolicy, StepFailed, current_step

WORKFLOW = "fuzz"


class FuzzError(Exception):
    """A planned failure: a step attempt the program says fails, or a Raise node."""


class SwallowedCancel(Exception):
    """A Try with swallow caught the run's cancellation and compensated: the workflow returns
    (the engine must still end the run cancelled)."""


def record_effect(effects: str, node: int) -> None:
    call = current_step()
    line = f"{call.run_id} {call.position} {call.attempt} {node} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def build_app(
    url: str,
    effects: str,
    *,
    worker: bool = True,
    lease_ttl: float = 1.0,
    poll_interval: float = 0.05,
    park_after: float = 1.0,
) -> App:
    app = App(
        url,
        worker=worker,
        lease_ttl=lease_ttl,
        poll_interval=poll_interval,
        park_after=park_after,
    )
    steps: dict[tuple[int, bool], Any] = {}
    for retries in (1, 2, 3):
        policy = RetryPolicy(max_attempts=retries, initial_delay=0.02, backoff=2.0, max_delay=0.1)

        async def astep(node: int, fail_first: int, ms: int) -> str:
            record_effect(effects, node)
            await asyncio.sleep(ms / 1000)
            if current_step().attempt <= fail_first:
                raise FuzzError(f"planned failure of step #{node}")
            return f"s{node}"

        def sstep(node: int, fail_first: int, ms: int) -> str:
            record_effect(effects, node)
            time.sleep(ms / 1000)
            if current_step().attempt <= fail_first:
                raise FuzzError(f"planned failure of step #{node}")
            return f"s{node}"

        steps[(retries, False)] = app.step(name=f"astep{retries}", retry=policy)(astep)
        steps[(retries, True)] = app.step(name=f"sstep{retries}", retry=policy)(sstep)

    @app.workflow(name=WORKFLOW)
    async def fuzz(ctx: Context, inp: dict[str, Any]) -> Any:
        try:
            return await Interpreter(ctx, steps).run(from_json(inp["prog"]))
        except SwallowedCancel:
            return "swallowed"

    return app


class Interpreter:
    def __init__(self, ctx: Context, steps: dict[tuple[int, bool], Any]) -> None:
        self.ctx = ctx
        self.steps = steps

    async def step(self, node: Step) -> Any:
        return await self.steps[(node.retries, node.sync)](node.id, node.fail_first, node.ms)

    async def run(self, node: Any) -> Any:
        ctx = self.ctx
        if isinstance(node, Seq):
            return [await self.run(item) for item in node.items]
        if isinstance(node, Sleep):
            await self.issue(node)
            return f"t{node.id}"
        if isinstance(node, (Step, Signal, Hold)):
            return await self.issue(node)
        if isinstance(node, Raise):
            raise FuzzError(f"raise #{node.id}")
        if isinstance(node, Child):
            rid = child_run_id(ctx.run_id, node)
            body = {"prog": to_json(node.body)}
            if node.abandon:
                return await ctx.run_child(WORKFLOW, body, run_id=rid, parent_close="abandon")
            return await ctx.run_child(WORKFLOW, body, run_id=rid)
        if isinstance(node, Select):
            return await self.select(node)
        if isinstance(node, Gather):
            return await self.gather(node)
        if isinstance(node, Try):
            return await self.try_(node)
        raise TypeError(f"not a node: {node!r}")

    def issue(self, node: Any) -> Awaitable[Any]:
        """Issue an atom's command now, synchronously, where the API takes its position at
        the call (steps, sleeps, signal waits), as `asyncio.gather(step(), ctx.sleep(1))`
        written by hand does; a child run takes its position when its coroutine first runs."""
        ctx = self.ctx
        if isinstance(node, Step):
            call: Awaitable[Any] = self.steps[(node.retries, node.sync)](
                node.id, node.fail_first, node.ms
            )
            return call
        if isinstance(node, Sleep):
            return ctx.sleep(node.ms / 1000)  # its value (None) is replaced by the caller
        if isinstance(node, Signal) and node.mode == "timeout":
            return ctx.wait_for_signal(f"g{node.id}", timeout=node.ms / 1000)
        if isinstance(node, Signal):
            timeout = SIGNAL_TIMEOUT_LONG if node.mode == "sent_timeout" else None
            return ctx.wait_for_signal(f"g{node.id}", timeout=timeout)
        if isinstance(node, Hold):
            return ctx.wait_for_signal(f"hold{node.id}")
        return self.run(node)  # Raise, Child

    async def gather(self, node: Gather) -> list[Any]:
        branches = [self.issue(b) for b in node.branches]
        if not node.all:
            return self.values(node, list(await asyncio.gather(*branches)))
        results = await asyncio.gather(*branches, return_exceptions=True)
        # Replayed, a branch that was cancelled live raises CancelledError by itself (live,
        # the whole gather was): the cancellation comes first either way.
        if any(isinstance(r, asyncio.CancelledError) for r in results):
            raise asyncio.CancelledError()
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return self.values(node, list(results))

    def values(self, node: Gather, results: list[Any]) -> list[Any]:
        pairs = zip(node.branches, results, strict=True)
        return [f"t{b.id}" if isinstance(b, Sleep) else r for b, r in pairs]

    async def select(self, node: Select) -> Any:
        ctx = self.ctx
        aws: list[asyncio.Future[Any]] = []
        if node.fast is not None:
            aws.append(asyncio.ensure_future(self.issue(node.fast)))
        for i in range(node.rivals):
            if i % 2 == 0:
                aws.append(asyncio.ensure_future(ctx.wait_for_signal(f"never{node.id}_{i}")))
            else:
                aws.append(asyncio.ensure_future(ctx.sleep(RIVAL_SLEEP)))
        timeout = None if node.timeout_ms is None else node.timeout_ms / 1000
        if node.as_completed:
            for first in ctx.as_completed(aws, timeout=timeout):
                value = await first
                break
        else:
            done, _ = await ctx.wait(aws, return_when=asyncio.FIRST_COMPLETED, timeout=timeout)
            if not done:
                return f"x{node.id}"
            value = next(iter(done)).result()
        return f"t{node.fast.id}" if isinstance(node.fast, Sleep) else value

    async def try_(self, node: Try) -> Any:
        try:
            return await self.run(node.body)
        except (StepFailed, ChildRunFailed, TimeoutError, FuzzError):
            return ["comp", await self.step(node.comp)]
        except asyncio.CancelledError:
            # The cancellation stands whatever the compensation did.
            with contextlib.suppress(Exception):
                await self.step(node.comp)
            if node.swallow:
                raise SwallowedCancel() from None
            raise
