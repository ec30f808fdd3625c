"""JavaScript steps as the engine uses them: bindings, proxied integration functions, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable.js import JsError, JsSandboxPool, SandboxError


@pytest.fixture
async def pool() -> AsyncIterator[JsSandboxPool]:
    async with JsSandboxPool(size=2, max_heap_mb=32, memory_limit_mb=256) as pool:
        yield pool


async def fetch_data(source: str) -> list[int]:
    await asyncio.sleep(0.05)
    return [1, 2, 3, 4, 5] if source == "a" else [10, 20, 30]


async def test_seed_example_shape(pool: JsSandboxPool) -> None:
    api = {"fetch_data": fetch_data}
    ctx = {"event": {"source_a": "a", "source_b": "b"}, "config": {"multiplier": 2}}
    fetched = await asyncio.gather(
        pool.evaluate(
            "return await fetch_data(ctx.event.source_a);", bindings={"ctx": ctx}, functions=api
        ),
        pool.evaluate(
            "return await fetch_data(ctx.event.source_b);", bindings={"ctx": ctx}, functions=api
        ),
    )
    combined = await pool.evaluate(
        """
        const multiplier = ctx.config.multiplier;  // config comes from ctx
        return [...deps.fetch_a, ...deps.fetch_b].map(x => x * multiplier);
        """,
        bindings={"ctx": ctx, "deps": {"fetch_a": fetched[0], "fetch_b": fetched[1]}},
    )
    assert combined == [2, 4, 6, 8, 10, 20, 40, 60]
    aggregate = await pool.evaluate(
        "return {sum: deps.combine.reduce((a, b) => a + b, 0), count: deps.combine.length,"
        " event: ctx.event}  // a trailing comment must not swallow the closing brace",
        bindings={"ctx": ctx, "deps": {"combine": combined}},
    )
    assert aggregate == {"sum": 150, "count": 8, "event": ctx["event"]}


async def test_concurrent_calls_within_one_evaluation(pool: JsSandboxPool) -> None:
    spans: list[tuple[float, float]] = []

    async def timed_fetch(source: str) -> list[int]:
        start = time.monotonic()
        result = await fetch_data(source)
        spans.append((start, time.monotonic()))
        return result

    result = await pool.evaluate(
        "return await Promise.all([fetch_data('a'), fetch_data('b'), fetch_data('a')]);",
        functions={"fetch_data": timed_fetch},
    )
    assert result == [[1, 2, 3, 4, 5], [10, 20, 30], [1, 2, 3, 4, 5]]
    # Overlapped, not chained: every call started before any of them finished.
    assert len(spans) == 3
    assert max(start for start, _ in spans) < min(end for _, end in spans)


async def test_two_sandboxes_run_in_parallel(pool: JsSandboxPool) -> None:
    # A barrier only two evaluations in progress at the same time can pass: run one after
    # the other (one sandbox, or a pool that serializes), the first would wait forever.
    arrived = 0
    both = asyncio.Event()

    async def barrier() -> int:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)
        return arrived

    code = "return await barrier();"
    results = await asyncio.gather(
        *(pool.evaluate(code, functions={"barrier": barrier}, timeout=20) for _ in range(2))
    )
    assert results == [2, 2]


async def test_more_evaluations_than_sandboxes_queue(pool: JsSandboxPool) -> None:
    results = await asyncio.gather(*(pool.evaluate(f"return {i} * 2") for i in range(10)))
    assert results == [i * 2 for i in range(10)]


async def test_js_exception_has_message_name_and_stack(pool: JsSandboxPool) -> None:
    with pytest.raises(JsError, match=r"^TypeError: bad input$") as caught:
        await pool.evaluate(
            "const x = 1;\nfunction check() { throw new TypeError('bad input'); }\ncheck();"
        )
    err = caught.value
    assert err.name == "TypeError"
    assert err.message == "bad input"
    assert err.stack is not None and "at check" in err.stack
    assert ":2:" in err.stack  # user line numbers survive the async wrapper
    assert str(err) == "TypeError: bad input"


async def test_thrown_non_error_value(pool: JsSandboxPool) -> None:
    with pytest.raises(JsError, match="42"):
        await pool.evaluate("throw 42;")


async def test_syntax_error(pool: JsSandboxPool) -> None:
    with pytest.raises(JsError, match=r"SyntaxError|Unexpected"):
        await pool.evaluate("return (;")


async def test_sync_and_async_integration_functions(pool: JsSandboxPool) -> None:
    threads: list[str] = []

    def add(a: int, b: int) -> int:
        threads.append(threading.current_thread().name)
        return a + b

    async def greet(name: str) -> str:
        await asyncio.sleep(0)
        return f"hello {name}"

    result = await pool.evaluate(
        "return [await add(2, 3), await greet(input.name)];",
        bindings={"input": {"name": "ada"}},
        functions={"add": add, "greet": greet},
    )
    assert result == [5, "hello ada"]
    # Plain functions run off the event loop, so a blocking one cannot stall the worker.
    assert threads and threads[0] != threading.main_thread().name


async def test_integration_error_is_catchable_in_js(pool: JsSandboxPool) -> None:
    def charge(amount: int) -> None:
        raise ValueError(f"card declined for {amount}")

    caught = await pool.evaluate(
        "try { await charge(5); return 'charged'; } catch (e) { return e.message; }",
        functions={"charge": charge},
    )
    assert "ValueError: card declined for 5" in caught
    with pytest.raises(JsError, match="card declined"):
        await pool.evaluate("await charge(7);", functions={"charge": charge})


async def test_values_round_trip(pool: JsSandboxPool) -> None:
    value: dict[str, Any] = {"n": None, "f": 1.5, "s": "é", "l": [True, {"k": []}], "i": 2**40}
    assert await pool.evaluate("return v;", bindings={"v": value}) == value
    assert await pool.evaluate("return [n, s];", bindings={"n": 7, "s": "x"}) == [7, "x"]
    assert await pool.evaluate("return undefined;") is None
    assert (
        await pool.evaluate(
            "return await echo(v);", bindings={"v": value}, functions={"echo": lambda x: x}
        )
        == value
    )


async def test_unsendable_result_is_an_error(pool: JsSandboxPool) -> None:
    with pytest.raises(JsError, match=r"^TypeError: cannot send a JsFunction out of the sandbox$"):
        await pool.evaluate("return () => 1;")
    assert await pool.evaluate("return 1;") == 1


async def test_bad_names_are_rejected_before_running(pool: JsSandboxPool) -> None:
    for bindings in ({"not a name": 1}, {"class": 1}, {"let": 1}, {"__bootstrap": 1}):
        with pytest.raises(ValueError, match="global"):
            await pool.evaluate("return 1", bindings=bindings)
    with pytest.raises(ValueError, match="both"):
        await pool.evaluate("return 1", bindings={"f": 1}, functions={"f": fetch_data})


async def test_pool_must_be_open() -> None:
    pool = JsSandboxPool(size=1)
    with pytest.raises(SandboxError, match="not open"):
        await pool.evaluate("return 1")


async def test_a_sandbox_is_recycled_after_memory_exhaustion() -> None:
    # One sandbox, so the step after the bomb would land in the very same process: a process
    # that just ran out of memory can fail to start the next isolate (V8 aborts it), which
    # would fail an innocent step. It is replaced instead; a plain throw keeps it.
    async with JsSandboxPool(1) as single:
        first_pid = single.pids
        with pytest.raises(JsError, match="TypeError"):
            await single.evaluate("throw new TypeError('plain');")
        assert single.pids == first_pid
        with pytest.raises(JsError, match=r"allocation failed|Invalid|Heap limit"):
            await single.evaluate(
                "const keep = []; while (true) { keep.push(new Float64Array(5e7).fill(1)); }"
            )
        assert single.pids == []  # killed; restarted on its next use
        for n in range(3):
            assert await single.evaluate(f"return {n} + 1;") == n + 1
        assert single.pids and single.pids != first_pid
