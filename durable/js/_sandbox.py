"""One sandbox subprocess: start it, run one evaluation at a time in it, kill it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from durable._limits import cut
from durable.js import _child
from durable.js._child import Call, Done, Evaluate, Failed, Ready, Reply
from durable.js._errors import JsError, JsTimeout, SandboxCrashed, SandboxStartError

# How much of the child's stderr a crash report quotes: V8's fatal-error banner and Rust panic
# messages are a few lines; their backtraces are not worth more.
_STDERR_TAIL_LINES = 12
# After the child's stdout closes, how long to wait for its exit status and last stderr lines.
_REAP_GRACE = 2.0


def scrubbed_env() -> dict[str, str]:
    """The child's entire environment: no database URL, no tokens, nothing inherited."""
    return {"PATH": os.defpath, "LANG": "C.UTF-8"}


class Sandbox:
    def __init__(self, *, memory_limit_mb: int, max_open_files: int, startup_timeout: float):
        self._argv = [
            sys.executable,
            "-I",  # ignore PYTHON* variables and the user site: nothing from the parent steers it
            _child.__file__,
            str(memory_limit_mb),
            str(max_open_files),
            str(os.getpid()),
        ]
        self._startup_timeout = startup_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self) -> None:
        self._stderr_tail.clear()
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=scrubbed_env(),
            # Its own session: a Ctrl-C aimed at the worker's process group is the worker's to
            # handle, not a signal that kills sandboxes mid-step.
            start_new_session=True,
            limit=_child.MAX_FRAME,
        )
        assert self._proc.stderr is not None
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._proc.stderr))
        try:
            async with asyncio.timeout(self._startup_timeout):
                message = await self._read()
        except (TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.kill()
            raise SandboxStartError(
                f"JavaScript sandbox failed to start: {exc!r}; stderr: {self._stderr_text()}"
            ) from None
        if not isinstance(message, Ready):
            await self.kill()
            raise SandboxStartError(f"JavaScript sandbox sent {message!r} instead of Ready")

    async def run(
        self,
        request: Evaluate,
        functions: Mapping[str, Callable[..., Any]],
        timeout: float,
    ) -> Any:
        """Run one evaluation. Any outcome but Done or a Failed that did not exhaust memory
        leaves the child killed (restarted on its next use)."""
        frame = _child.encode_frame(request)  # unsendable bindings are the caller's error
        clean = False
        calls: set[asyncio.Task[None]] = set()
        try:
            async with asyncio.timeout(timeout):
                await self._write_bytes(frame)
                while True:
                    message = await self._read()
                    if isinstance(message, Call):
                        task = asyncio.create_task(self._answer(message, functions))
                        calls.add(task)
                        task.add_done_callback(calls.discard)
                    elif isinstance(message, Done):
                        clean = True
                        return message.value
                    elif isinstance(message, Failed):
                        # After a memory exhaustion the process keeps memory it may not give
                        # back: the next isolate could fail to start in it (V8 aborts the
                        # process), failing an innocent step. Recycle it instead.
                        clean = not _exhausted(message)
                        # Cut here too: a sandbox that did not cut (or lied) costs no more.
                        stack = None if message.stack is None else cut(message.stack)
                        name = None if message.name is None else cut(message.name, 1024)
                        raise JsError(cut(message.message), stack, name)
                    else:
                        raise ValueError(f"unexpected message from sandbox: {message!r}")
        except TimeoutError:
            raise JsTimeout(timeout) from None
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            returncode = await self._reap()
            detail = self._stderr_text()
            if isinstance(exc, ValueError):  # a protocol violation, not a death
                detail = f"{exc}; {detail}" if detail else str(exc)
            raise SandboxCrashed(returncode, detail) from None
        finally:
            # Integration calls the JS never awaited (or that outlived a failure) end with it.
            for task in calls:
                task.cancel()
            if not clean:
                # Timeout, crash, or our caller cancelled: the child's state is unknown.
                await self.kill()

    async def _answer(self, call: Call, functions: Mapping[str, Callable[..., Any]]) -> None:
        function = functions.get(call.name)
        try:
            if function is None:
                raise LookupError(f"no integration function named {call.name!r}")
            reply = Reply(call_id=call.call_id, value=await _invoke(function, call.args))
            frame = _child.encode_frame(reply)
        except Exception as exc:
            # Whatever the function raised becomes a JS exception the step can catch.
            frame = _child.encode_frame(
                Reply(call_id=call.call_id, error=f"{type(exc).__name__}: {exc}")
            )
        # A child that died meanwhile is the reader's to report, not ours.
        with contextlib.suppress(ConnectionError):
            await self._write_bytes(frame)

    async def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await self._reap()

    async def close(self) -> None:
        """Ask the child to exit (EOF on its stdin); kill it if it does not."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            async with asyncio.timeout(_REAP_GRACE):
                await proc.wait()
        except TimeoutError:
            pass
        await self.kill()

    async def _reap(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        try:
            async with asyncio.timeout(_REAP_GRACE):
                await proc.wait()
                if self._stderr_task is not None:
                    await self._stderr_task
        except TimeoutError:
            # Stdout closed but the process lingers: it is in no state to evaluate anything.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
        return proc.returncode

    async def _read(self) -> _child.Message:
        assert self._proc is not None and self._proc.stdout is not None
        return await _child.read_frame(self._proc.stdout)

    async def _write_bytes(self, frame: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(frame)
        await self._proc.stdin.drain()

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        # Always drained: a child blocked on a full stderr pipe would look like a hung step.
        pending = b""
        while chunk := await stream.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-4096:]  # a newline-free flood must not grow without bound
            for line in lines:
                text = line.decode(errors="replace").rstrip()
                # Backtrace frames (V8's and Rust's are indented) are noise next to the
                # fatal-error or panic line that precedes them.
                if text and not text[0].isspace():
                    self._stderr_tail.append(text[:500])

    def _stderr_text(self) -> str:
        return " | ".join(self._stderr_tail)


async def _invoke(function: Callable[..., Any], args: list[Any]) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    # A blocking integration function must not stall the worker's event loop (and with it every
    # other step and lease heartbeat), so plain functions run in a thread.
    result = await asyncio.to_thread(function, *args)
    if inspect.isawaitable(result):  # e.g. a functools.partial of an async function
        result = await result
    return result


_EXHAUSTION_MARKS = (
    "heap limit",
    "allocation failed",
    "invalid string length",
    "invalid array length",
    "memory",
)


def _exhausted(failed: Failed) -> bool:
    text = f"{failed.name} {failed.message}".lower()
    return failed.name == "RuntimeTerminated" or any(m in text for m in _EXHAUSTION_MARKS)
