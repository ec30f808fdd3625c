"""run_script: real subprocesses, their process groups, environment, limits and output."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable.dag import ScriptResult, run_script
from durable.dag._script import script_argv


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _pids_in(path: Path, count: int) -> list[int] | None:
    words = path.read_text().split() if path.exists() else []
    return [int(word) for word in words[:count]] if len(words) >= count else None


_POLL = 0.05


async def _wait_dead(pids: list[int], within: float = 10.0) -> list[int]:
    """Pids still alive after `within` seconds (killed processes need a moment to go)."""
    for _ in range(int(within / _POLL)):
        if not any(_alive(pid) for pid in pids):
            break
        await asyncio.sleep(_POLL)
    return [pid for pid in pids if _alive(pid)]


async def _read_pids(path: Path, count: int, within: float = 20.0) -> list[int]:
    for _ in range(int(within / _POLL)):
        if (pids := _pids_in(path, count)) is not None:
            return pids
        await asyncio.sleep(_POLL)
    raise AssertionError(f"{path} never held {count} pids")


def _real(path: Path) -> str:
    return str(path.resolve())


# A script that starts a background grandchild in its own group, writes both pids, then waits.
_SPAWNER = "sleep 60 & echo $$ $! > {pids}; wait"


def test_argv_rules() -> None:
    assert script_argv("job.py --n 3 'a b'") == [sys.executable, "job.py", "--n", "3", "a b"]
    assert script_argv("echo a | wc -c") == ["/bin/sh", "-c", "echo a | wc -c"]
    assert script_argv("python job.py") == ["/bin/sh", "-c", "python job.py"]
    assert script_argv("echo 'unbalanced") == ["/bin/sh", "-c", "echo 'unbalanced"]


async def test_py_script_with_args_and_exit_code(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(
        "import sys\nprint('args', sys.argv[1:])\nprint('exe', sys.executable)\nsys.exit(7)\n"
    )
    began = time.monotonic()
    result = await run_script("job.py one 'two words'", cwd=tmp_path)
    took = time.monotonic() - began
    assert isinstance(result, ScriptResult)
    assert result.exit_code == 7 and result.signal is None and not result.timed_out
    assert "args ['one', 'two words']" in result.stdout
    assert f"exe {sys.executable}" in result.stdout
    # In seconds, the child's whole life: more than nothing (a Python starts), within the call.
    assert 0.001 < result.duration <= took


async def test_py_script_by_absolute_path(tmp_path: Path) -> None:
    script = tmp_path / "ok.py"
    script.write_text("print('fine')\n")
    result = await run_script(str(script))
    assert (result.exit_code, result.stdout) == (0, "fine\n")


async def test_shell_command_with_pipes_and_stderr() -> None:
    result = await run_script("printf 'b\\na\\nc\\n' | sort | tr a-z A-Z; echo oops >&2; exit 3")
    assert result.exit_code == 3
    assert result.stdout == "A\nB\nC\n"
    assert result.stderr == "oops\n"


async def test_env_passed_and_parent_environment_inherited_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DURABLE_DATABASE_URL", "postgresql://secret@db/durable")
    monkeypatch.setenv("SOME_PARENT_VAR", "parent")
    monkeypatch.setenv("HOME", "/home/someone")
    result = await run_script(
        "env", env={"GREETING": "hello world", "HOME": "/override"}, inherit_env=False
    )
    lines = set(result.stdout.splitlines())
    assert "GREETING=hello world" in lines
    assert "HOME=/override" in lines
    assert any(line.startswith("PATH=") for line in lines)
    assert "secret" not in result.stdout
    assert not any(line.startswith(("DURABLE_DATABASE_URL=", "SOME_PARENT_VAR=")) for line in lines)
    # Inheriting (the default) passes the parent's variables, never the engine's own.
    inherited = (await run_script("env")).stdout.splitlines()
    assert "SOME_PARENT_VAR=parent" in inherited
    assert not any(line.startswith("DURABLE_") for line in inherited)


async def test_env_values_must_be_strings() -> None:
    with pytest.raises(TypeError, match="str to str"):
        await run_script("true", env={"N": 3})  # type: ignore[dict-item]


async def test_cwd_honored(tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("here")
    result = await run_script("pwd; cat marker.txt", cwd=str(tmp_path))
    assert result.stdout.splitlines() == [_real(tmp_path), "here"]


async def test_output_cut_with_marker() -> None:
    result = await run_script(
        "printf 'a%0498db' 0; printf '%0300d' 0 >&2",
        output_limit=100,
    )
    # Both ends kept, the middle cut, the marker saying how much: all within the limit.
    assert result.stdout.startswith("a0") and result.stdout.endswith("0b")
    for text, total in ((result.stdout, 500), (result.stderr, 300)):
        assert len(text.encode()) <= 100
        found = re.search(r" … \[cut (\d+) of (\d+) bytes\] … ", text)
        assert found is not None, text
        assert int(found.group(2)) == total
        assert int(found.group(1)) == total - (len(text) - len(found.group(0)))


async def test_large_output_does_not_deadlock() -> None:
    five_mb = 5 * 1024 * 1024
    code = f"import sys; sys.stdout.write('o' * {five_mb}); sys.stderr.write('e' * {five_mb})"
    result = await asyncio.wait_for(
        run_script(f'{sys.executable} -c "{code}"', output_limit=10 * 1024 * 1024), 120
    )
    assert result.exit_code == 0
    assert len(result.stdout) == five_mb and len(result.stderr) == five_mb


async def test_timeout_kills_whole_process_group(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    result = await run_script(_SPAWNER.format(pids=pids_file), timeout=1)
    assert result.timed_out
    assert result.signal is not None and result.exit_code == 128 + result.signal
    pids = await _read_pids(pids_file, 2)
    assert await _wait_dead(pids) == []


async def test_timeout_escalates_to_sigkill_when_term_is_ignored(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    script = "trap '' TERM; sleep 60 & echo $$ $! > {pids}; while true; do sleep 1; done"
    result = await run_script(script.format(pids=pids_file), timeout=1)
    assert result.timed_out and result.signal == 9 and result.exit_code == 137
    assert await _wait_dead(await _read_pids(pids_file, 2)) == []


async def test_background_children_do_not_outlive_a_finished_script(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    start = time.monotonic()
    result = await run_script(f"sleep 60 & echo $! > {pids_file}; echo done")
    assert result.exit_code == 0 and result.stdout == "done\n" and not result.timed_out
    assert time.monotonic() - start < 30  # did not wait for the 60 s grandchild
    assert await _wait_dead(await _read_pids(pids_file, 1)) == []


async def test_cancellation_kills_whole_process_group(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    task = asyncio.create_task(run_script(_SPAWNER.format(pids=pids_file)))
    pids = await _read_pids(pids_file, 2)
    assert all(_alive(pid) for pid in pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_dead(pids) == []


async def test_memory_limit_stops_big_allocation() -> None:
    memory_mb = 200
    code = f"b = bytearray({2 * memory_mb} * 1024 * 1024); print('allocated')"
    result = await run_script(f'{sys.executable} -c "{code}"', memory_mb=memory_mb)
    assert result.exit_code != 0
    assert "MemoryError" in result.stderr
    assert "allocated" not in result.stdout


async def test_memory_limit_allows_small_allocation() -> None:
    code = "b = bytearray(20 * 1024 * 1024); import json, asyncio; print('allocated')"
    result = await run_script(f'{sys.executable} -c "{code}"', memory_mb=200)
    assert (result.exit_code, result.stdout) == (0, "allocated\n"), result.stderr


async def test_memory_limit_applies_to_py_scripts(tmp_path: Path) -> None:
    (tmp_path / "hog.py").write_text("b = bytearray(400 * 1024 * 1024)\nprint('allocated')\n")
    result = await run_script("hog.py", cwd=tmp_path, memory_mb=200)
    assert result.exit_code != 0 and "MemoryError" in result.stderr


async def test_killed_by_signal_is_reported() -> None:
    result = await run_script("kill -9 $$")
    assert (result.exit_code, result.signal, result.timed_out) == (137, 9, False)


async def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        await run_script("  ")
    with pytest.raises(ValueError, match="timeout"):
        await run_script("true", timeout=0)
    with pytest.raises(ValueError, match="memory_mb"):
        await run_script("true", memory_mb=0)
    with pytest.raises(FileNotFoundError):
        await run_script("true", cwd="/no/such/directory")


def test_a_script_dies_with_its_worker(tmp_path: Path) -> None:
    """SIGKILL the process running a script step: the script goes too (no orphan left to
    overlap the attempt the next worker starts)."""
    pidfile = tmp_path / "script.pid"
    script = tmp_path / "long.py"
    script.write_text(
        "import os, sys, time\n"
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "from durable.dag import run_script\n"
            "asyncio.run(run_script(sys.argv[1]))\n",
            str(script),
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text():
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        script_pid = int(pidfile.read_text())
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        deadline = time.monotonic() + 10
        while _alive(script_pid):
            assert time.monotonic() < deadline, "the script outlived its worker"
            time.sleep(0.02)
    finally:
        worker.kill()
        worker.wait()
