"""Hostile JavaScript harms only its sandbox: the engine process and the pool carry on."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durable.js import JsError, JsSandboxPool, JsTimeout, SandboxCrashed


@pytest.fixture
async def single() -> AsyncIterator[JsSandboxPool]:
    """One sandbox, so consecutive evaluations are known to share a process."""
    async with JsSandboxPool(size=1, max_heap_mb=32, memory_limit_mb=256) as pool:
        yield pool


async def test_no_state_leaks_between_evaluations(single: JsSandboxPool) -> None:
    [pid] = single.pids
    await single.evaluate("globalThis.leak = 'secret'; Array.prototype.evil = 1; return 1;")
    assert await single.evaluate("return [typeof leak, [].evil === undefined];") == [
        "undefined",
        True,
    ]
    assert single.pids == [pid]  # same process, fresh runtime


async def test_timeout_kills_and_replaces_the_sandbox(single: JsSandboxPool) -> None:
    [pid] = single.pids
    started = time.perf_counter()
    with pytest.raises(JsTimeout, match=r"timed out after 0\.5s; sandbox killed"):
        await single.evaluate("while (true) {}", timeout=0.5)
    assert time.perf_counter() - started < 5.0  # the infinite loop was stopped, not waited out
    assert single.pids == []  # killed, replaced on next use
    assert await single.evaluate("return 'alive';") == "alive"
    assert single.pids != [pid]


async def test_timeout_covers_slow_integration_calls(single: JsSandboxPool) -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    with pytest.raises(JsTimeout, match=r"timed out after 0\.3s"):
        await single.evaluate("await slow();", functions={"slow": slow}, timeout=0.3)
    assert await single.evaluate("return 2;") == 2


async def test_op_panic_kills_only_the_sandbox(single: JsSandboxPool) -> None:
    # One line that aborts any process hosting jsrun (a Rust panic that cannot unwind).
    with pytest.raises(
        SandboxCrashed, match=r"JavaScript sandbox died \(killed by SIGABRT\)"
    ) as caught:
        await single.evaluate("__bootstrap.core.ops.op_panic('hostile');")
    assert caught.value.signal == signal.SIGABRT
    assert "panic" in str(caught.value)
    assert await single.evaluate("return 3;") == 3


async def test_typed_arrays_beyond_the_memory_limit(single: JsSandboxPool) -> None:
    # V8's max_heap_size does not count ArrayBuffer backing stores; RLIMIT_DATA does.
    code = """
        const keep = [];
        for (let i = 0; i < 16; i++) keep.push(new Uint8Array(64 * 1024 * 1024).fill(1));
        return keep.length;
    """
    # A JavaScript error the step can see (and catch), not the sandbox's death.
    with pytest.raises(JsError, match=r"^RangeError: Array buffer allocation failed$"):
        await single.evaluate(code)
    with pytest.raises(JsError, match="RangeError"):
        await single.evaluate("return new Uint8Array(2 ** 31).length;")
    assert await single.evaluate("return 4;") == 4


async def test_huge_string_fails_the_evaluation(single: JsSandboxPool) -> None:
    with pytest.raises(JsError, match=r"^RangeError: Invalid string length$"):
        await single.evaluate("let s = 'x'; for (let i = 0; i < 40; i++) s += s; return s.length;")
    assert await single.evaluate("return 5;") == 5


async def test_heap_exhaustion_fails_the_evaluation(single: JsSandboxPool) -> None:
    # V8's max_heap_size ends it as an error; the rlimit alone would crash the sandbox.
    with pytest.raises(JsError, match=r"^RuntimeTerminated: .*Heap limit exceeded"):
        await single.evaluate("const a = []; while (true) a.push({n: a.length});", timeout=20)
    assert await single.evaluate("return 6;") == 6


async def test_cancelled_evaluation_kills_the_sandbox(single: JsSandboxPool) -> None:
    task = asyncio.create_task(single.evaluate("while (true) {}", timeout=30))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert single.pids == []
    assert await single.evaluate("return 7;") == 7


def _proc_file(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
async def test_child_env_is_scrubbed_and_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_DATABASE_URL", "postgresql://user:hunter2@db/prod")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shh")
    async with JsSandboxPool(size=1, memory_limit_mb=300) as pool:
        [pid] = pool.pids
        environ = _proc_file(pid, "environ")
        assert "DURABLE_DATABASE_URL" not in environ and "hunter2" not in environ
        assert "AWS_SECRET" not in environ
        limits = {
            line[:26].strip(): line[26:].split()[:2]
            for line in _proc_file(pid, "limits").splitlines()[1:]
        }
        assert limits["Max data size"] == [str(300 * 1024 * 1024)] * 2
        assert limits["Max core file size"] == ["0", "0"]
        assert limits["Max open files"] == ["64", "64"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_sandbox_dies_with_its_parent(tmp_path: Path) -> None:
    # A worker killed by SIGKILL must not leave a sandbox spinning in an infinite loop.
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from durable.js import JsSandboxPool

            async def main() -> None:
                async with JsSandboxPool(size=1) as pool:
                    print(pool.pids[0], flush=True)
                    await pool.evaluate("while (true) {}", timeout=60)

            asyncio.run(main())
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        time.sleep(0.3)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child_pid)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        state = _proc_file(pid, "stat").rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie awaits reaping by init; it runs no code
