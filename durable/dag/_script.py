"""Run a DAG `script` step: a subprocess in its own session, killed as a whole process group.

Semantics (see `run_script`):

* Command. `script` is split shell-style; if its first word ends with `.py`, the file is run
  with the current interpreter (`sys.executable`) and the remaining words as arguments (no
  shell involved). Anything else runs through `/bin/sh -c script`.
* Process group. The child is started with `start_new_session=True`, so it leads a new
  session and process group; everything it spawns (unless it deliberately escapes with its
  own `setsid`) is in that group. The group never outlives the call: on timeout it gets
  SIGTERM, then SIGKILL after a grace period; on cancellation of the awaiting task it gets
  SIGKILL at once; and when the script exits normally, background children it left behind
  get SIGKILL too (a step's processes end with the step).
* Environment. With `inherit_env` (the default) the child gets the parent's environment
  minus the engine's own variables: every `DURABLE_*` (the database URL, the API tokens),
  libpq's PGPASSWORD/PGPASSFILE, and any variable whose value carries one of their secrets
  (e.g. a copy of the database URL under another name); so `OUT=/tmp/x durable run wf.yaml`
  gives the script its $OUT, as make, CI systems and Airflow's BashOperator do. Without it,
  only PATH, LANG, HOME and TMPDIR are passed (PATH falls back to a standard value if the
  parent has none). The given `env` is merged over either base, as written: a name the
  caller chose is passed even if it looks like an engine variable.
* Memory. `memory_mb` sets RLIMIT_DATA (soft and hard) in the child before exec. On Linux
  >= 4.7 RLIMIT_DATA counts private writable memory, including the anonymous mmaps large
  allocations use, so a Python `bytearray` larger than the limit raises MemoryError. It is
  preferred to RLIMIT_AS because address-space reservations that use no memory (thread
  stacks, malloc arenas, runtimes such as the JVM or Go that reserve large ranges up front)
  do not count. The limit is set in the script's process between fork and exec by the
  launcher (durable.dag._launcher), which is single-threaded, so none of `preexec_fn`'s
  thread hazards applies; the launcher itself is not limited.
* Launcher. The worker does not start the script itself but a small launcher (Python, -S -I,
  about 10 ms), which forks and execs the script and reports how it ended with its CPU time
  and peak memory (see Resources; durable.dag._launcher says why). The worker's own
  `preexec_fn` for the launcher only calls `prctl` (through a ctypes handle made in the
  parent) and `os.getppid`, neither of which takes a Python-level lock (CPython documents
  `preexec_fn` as not safe with threads: a lock held at fork time could deadlock the child).
* Worker death. The launcher asks the kernel (PR_SET_PDEATHSIG) for SIGKILL when the worker
  dies, and the script for SIGKILL when the launcher dies, so a worker killed with SIGKILL
  does not leave its script running beside the attempt the next worker starts. It covers the
  process the launcher started (the interpreter for `.py`, else the shell); a shell's own
  children are not covered (use `exec` in a script to make the long-running program the one
  the launcher started).
* Output. stdout and stderr are read concurrently while the script runs (no pipe deadlock
  for large output). Each keeps at most `output_limit` bytes (durable._limits): its first
  and last halves, with the marker of durable._limits.cut between them saying how many bytes
  were cut; the middle is read and discarded as it arrives, never held. Bytes are decoded as
  UTF-8 with replacement characters for invalid sequences. stdin is /dev/null.
* Result. A non-zero exit is a normal result; the caller decides what failure means. If the
  script was ended by a signal, `signal` is its number and `exit_code` is `128 + signal`
  (the shell convention), so `exit_code` is always a non-negative int.
* Resources. `cpu_seconds` (user + system) and `max_rss_kb` (peak resident set size, KiB) are
  the script's own: those of the process the launcher started and of every descendant it
  waited for (a shell's commands, a pipeline's stages), from `os.wait4` on that one process,
  never a worker-wide measure. A background process the script left behind (the group kill
  ends it) is not counted, as its parent did not wait for it. Both are None when the
  launcher was killed before it could report (SIGKILL after a timeout's grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import shlex
import signal as _signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from durable._limits import MAX_SCRIPT_OUTPUT_BYTES, marker
from durable._policy import inherited_environment

from ._launcher import Outcome, launcher_argv, read_outcome

__all__ = ["ScriptResult", "run_script"]

#: Seconds between SIGTERM and SIGKILL when a script times out.
TERMINATE_GRACE_SECONDS = 2.0
#: Seconds to wait for the output pipes to close once the process group has been killed
#: (only processes that escaped the group with their own setsid can hold them longer).
_DRAIN_SECONDS = 5.0
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_INHERITED_ENV = ("PATH", "LANG", "HOME", "TMPDIR")


@dataclass(frozen=True, slots=True)
class ScriptResult:
    """What a script run produced.

    `exit_code` is the process's exit status, or `128 + signal` if a signal ended it (then
    `signal` is the signal number, otherwise None). `stdout` and `stderr` are decoded text,
    each cut to `output_limit` bytes with a truncation marker. `duration` is in seconds.
    `timed_out` says the run was ended because it exceeded its timeout. `cpu_seconds` (user +
    system) and `max_rss_kb` (peak resident set size, in KiB) are the script's process tree's
    (see the module docstring).
    """

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    signal: int | None
    cpu_seconds: float | None = None
    max_rss_kb: int | None = None


def script_argv(script: str) -> list[str]:
    """The argv a script string runs as: the interpreter for a `.py` file, else `sh -c`."""
    try:
        words = shlex.split(script)
    except ValueError:  # unbalanced quotes: let the shell report it
        words = []
    if words and words[0].endswith(".py"):
        return [sys.executable, *words]
    return ["/bin/sh", "-c", script]


def script_env(
    env: Mapping[str, str] | None, *, inherit: bool = True, secrets: Iterable[str] = ()
) -> dict[str, str]:
    """The child's environment: the parent's without the engine's variables and anything
    carrying `secrets` (or, without `inherit`, only PATH/LANG/HOME/TMPDIR), then `env`."""
    if inherit:
        base = inherited_environment(os.environ, secrets)
    else:
        base = {key: os.environ[key] for key in _INHERITED_ENV if key in os.environ}
    base.setdefault("PATH", _DEFAULT_PATH)
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"env entries must be str to str, got {key!r}: {value!r}")
        base[key] = value
    return base


# prctl(2), looked up once in the parent: the child between fork and exec only calls it.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _child_setup() -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:  # runs in the launcher between fork and exec
        if _libc is not None:
            # A worker killed with SIGKILL takes its script with it (the launcher, and the
            # script through the launcher): left running, the orphan would overlap the
            # attempt the next worker starts for the same step.
            _libc.prctl(_PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the worker died before prctl took effect
                os._exit(137)

    return setup


class _Capture:
    """One pipe's output in bounded memory: all of it up to `limit` bytes; past that, its
    first and last parts (about `limit` bytes together) and how much it was in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()  # the latest bytes past the head, trimmed as it grows
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = max(self.limit - len(self.head), 0)
        if room:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.limit:  # trimmed in batches: amortized O(chunk)
                del self.tail[: -self.limit]

    def text(self) -> str:
        if self.total <= self.limit:
            return self.head.decode("utf-8", errors="replace")
        # Over the limit: what cut() keeps of the whole, taken from the parts we held.
        room = max(self.limit - len(marker(self.total, self.total).encode()), 0)
        head = bytes(self.head[: (room + 1) // 2]).decode("utf-8", "ignore")
        tail_bytes = min(room // 2, len(self.tail))
        tail = bytes(self.tail[len(self.tail) - tail_bytes :]).decode("utf-8", "ignore")
        dropped = self.total - len(head.encode()) - len(tail.encode())
        return head + marker(dropped, self.total) + tail


class _Pipe(asyncio.Protocol):
    """Reads one of the script's output pipes into its capture as the bytes arrive."""

    def __init__(self, capture: _Capture, closed: asyncio.Future[None]) -> None:
        self.capture = capture
        self.closed = closed

    def data_received(self, data: bytes) -> None:
        self.capture.add(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _reap(process: subprocess.Popen[bytes], report_fd: int) -> asyncio.Future[Outcome]:
    """A future of how the script ended, with its figures (durable.dag._launcher).

    The launcher is started with subprocess.Popen, not loop.subprocess_exec, and reaped here
    by a thread of its own blocked in waitpid (as asyncio's ThreadedChildWatcher does, on
    every platform): no asyncio child watcher knows the pid, so none competes to reap it.
    The thread holds the Popen and sets its returncode, so subprocess never reaps it either.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Outcome] = loop.create_future()

    def deliver(outcome: Outcome | BaseException) -> None:
        if done.done():
            return
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)

    def wait() -> None:
        outcome: Outcome | BaseException
        try:
            _, status = os.waitpid(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            outcome = read_outcome(report_fd, process.returncode)
        except BaseException as exc:  # never leave the step waiting for nothing
            outcome = exc
        finally:
            os.close(report_fd)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(deliver, outcome)

    threading.Thread(target=wait, name=f"durable-script-{process.pid}", daemon=True).start()
    return done


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _terminate_group(pgid: int, exited: asyncio.Future[Outcome], grace: float) -> None:
    """SIGTERM the group, give the leader `grace` seconds, then SIGKILL the group."""
    _kill_group(pgid, _signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(exited), grace)
    _kill_group(pgid, _signal.SIGKILL)
    await exited


async def run_script(
    script: str,
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    memory_mb: int | None = None,
    output_limit: int = MAX_SCRIPT_OUTPUT_BYTES,
    inherit_env: bool = True,
    secrets: Iterable[str] = (),
) -> ScriptResult:
    """Run `script` as a subprocess in a new session and return what it did.

    See the module docstring for the rules (`inherit_env`, `secrets`: the environment; no
    inherited variable whose value contains one of `secrets` is passed). `timeout`
    (seconds) ends the whole process group (SIGTERM, then SIGKILL after
    `TERMINATE_GRACE_SECONDS`) and sets `timed_out`. Cancelling
    the awaiting task SIGKILLs the group, reaps the script and re-raises CancelledError.
    Raises ValueError for an empty script or a non-positive limit, and OSError if the
    program cannot be started at all (e.g. a missing `cwd`).
    """
    if not script.strip():
        raise ValueError("script is empty")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if memory_mb is not None and memory_mb <= 0:
        raise ValueError(f"memory_mb must be positive, got {memory_mb}")
    if output_limit < 0:
        raise ValueError(f"output_limit must be >= 0, got {output_limit}")

    loop = asyncio.get_running_loop()
    started = time.monotonic()
    report_read, report_write = os.pipe()
    memory = memory_mb * 1024 * 1024 if memory_mb is not None else None
    try:
        # Popen, not loop.subprocess_exec (see _reap); which calls this same Popen, blocking
        # the loop for the same fork and exec.
        process = subprocess.Popen(  # noqa: ASYNC220
            launcher_argv(report_write, memory, script_argv(script)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=script_env(env, inherit=inherit_env, secrets=secrets),
            start_new_session=True,
            pass_fds=(report_write,),
            preexec_fn=_child_setup(),
        )
    except BaseException:
        os.close(report_read)
        raise
    finally:
        os.close(report_write)  # the launcher holds the write end now
    exited = _reap(process, report_read)
    pgid = process.pid  # the leader of a new session leads its process group
    out, err = _Capture(output_limit), _Capture(output_limit)
    closing: list[asyncio.Future[None]] = []
    transports: list[asyncio.BaseTransport] = []
    try:
        for pipe, capture in ((process.stdout, out), (process.stderr, err)):
            assert pipe is not None  # stdout=PIPE, stderr=PIPE
            closed: asyncio.Future[None] = loop.create_future()
            closing.append(closed)
            reader, _ = await loop.connect_read_pipe(
                functools.partial(_Pipe, capture, closed), pipe
            )
            transports.append(reader)
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(exited)
        except TimeoutError:
            timed_out = True
            await _terminate_group(pgid, exited, TERMINATE_GRACE_SECONDS)
        # The leader is gone; background children it left in the group go with it.
        _kill_group(pgid, _signal.SIGKILL)
        # Pipes still open now are held by a process that escaped the group: stop waiting.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*closing)), _DRAIN_SECONDS)
    except BaseException:
        # Cancellation (or anything unexpected): the group must not outlive us.
        _kill_group(pgid, _signal.SIGKILL)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(exited), TERMINATE_GRACE_SECONDS)
        raise
    finally:
        for transport in transports:
            transport.close()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    duration = time.monotonic() - started

    outcome = exited.result()
    returncode = outcome.returncode
    sig = -returncode if returncode < 0 else None
    return ScriptResult(
        exit_code=128 + sig if sig is not None else returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration=duration,
        timed_out=timed_out,
        signal=sig,
        cpu_seconds=outcome.cpu_seconds,
        max_rss_kb=outcome.max_rss_kb,
    )
