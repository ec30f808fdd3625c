"""The sandbox process, and the wire protocol it shares with the parent.

The parent runs this file *by path* (``python -I .../_child.py``), not as ``-m durable.js._child``:
importing the ``durable`` package would load the whole engine into the sandbox before the rlimits
are in place. So this module imports only the standard library and msgspec at top level, and jsrun
only once the limits are set. The parent imports it for the message types, so both sides share one
definition of the protocol.

Frames are a 4-byte big-endian length followed by a msgpack-encoded message.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import itertools
import os
import resource
import signal
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from jsrun import Runtime

# A frame larger than this is a protocol error, not a value: it bounds what a confused or hostile
# peer can make the other side allocate.
MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")

# The name the bindings travel under before the bootstrap script spreads them over globalThis.
_BINDINGS_GLOBAL = "__durable_bindings"


class Ready(msgspec.Struct, tag=True, array_like=True):
    """Child -> parent, once: the limits are set and jsrun imported."""

    pid: int


class Evaluate(msgspec.Struct, tag=True, array_like=True):
    """Parent -> child: run ``code`` as an async function body in a fresh runtime."""

    code: str
    bindings: dict[str, Any]
    functions: list[str]
    max_heap_bytes: int
    max_result_bytes: int = 8 * 1024 * 1024
    # Each of an error's message and stack is cut to this (durable._limits) before it is sent.
    max_error_bytes: int = 64 * 1024


class Call(msgspec.Struct, tag=True, array_like=True):
    """Child -> parent: JS called a bound integration function."""

    call_id: int
    name: str
    args: list[Any]


class Reply(msgspec.Struct, tag=True, array_like=True):
    """Parent -> child: the outcome of a ``Call``; ``error`` is set when it raised."""

    call_id: int
    value: Any = None
    error: str | None = None


class Done(msgspec.Struct, tag=True, array_like=True):
    """Child -> parent: the evaluation's result."""

    value: Any


class Failed(msgspec.Struct, tag=True, array_like=True):
    """Child -> parent: the evaluation threw (or its result could not be sent)."""

    name: str | None
    message: str
    stack: str | None


Message = Ready | Evaluate | Call | Reply | Done | Failed


def _enc_hook(obj: object) -> Any:
    # jsrun returns a JsUndefined singleton for `undefined`; on the wire it is null, as in JSON.
    if type(obj).__name__ == "JsUndefined":
        return None
    raise TypeError(f"cannot send a {type(obj).__name__} out of the sandbox")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode_frame(message: Message) -> bytes:
    return frame(_encoder.encode(message))


def frame(payload: bytes) -> bytes:
    """A frame around an encoded message."""
    if len(payload) > MAX_FRAME:
        raise ValueError(f"message of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> Message:
    """Read one message; raises ``asyncio.IncompleteReadError`` at end of stream."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > MAX_FRAME:
        raise ValueError(f"peer sent a {size}-byte frame, over the {MAX_FRAME}-byte limit")
    return _decoder.decode(await reader.readexactly(size))


# ---------------------------------------------------------------------------------------------
# The child side. Nothing below runs in the parent.


class HostError(Exception):
    """What JS sees when a proxied integration function raised in the parent."""


def _load_limits() -> Any:
    """durable/_limits.py, loaded by its path: importing it as `durable._limits` would import
    the durable package, and the whole engine with it, into the sandbox."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_limits.py")
    spec = importlib.util.spec_from_file_location("_durable_limits", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _apply_limits(memory_limit_mb: int, max_open_files: int, parent_pid: int) -> None:
    # RLIMIT_DATA, not RLIMIT_AS: V8 reserves tens of GB of address space up front (the pointer
    # compression cage, Oilpan's caged heap) and aborts at startup under any useful RLIMIT_AS.
    # RLIMIT_DATA counts committed private memory, which is what typed arrays and huge strings
    # consume outside V8's max_heap_size.
    limit = memory_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))
    if sys.platform == "linux":
        # If the parent dies (even by SIGKILL), an infinite JS loop must not outlive it.
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)


class _Child:
    def __init__(self, out_fd: int, cut: Callable[[str, int], str]) -> None:
        self._out_fd = out_fd
        self._cut = cut
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._call_ids = itertools.count()
        self._evaluation: asyncio.Task[None] | None = None

    def send(self, message: Message) -> None:
        self._write(encode_frame(message))

    def _write(self, frame: bytes) -> None:
        # Blocking writes are fine here: the parent always drains our stdout, and a message is one
        # write so concurrent proxies never interleave frames.
        data = memoryview(frame)
        while data:
            data = data[os.write(self._out_fd, data) :]

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_FRAME)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self.send(Ready(pid=os.getpid()))
        while True:
            try:
                message = await read_frame(reader)
            except asyncio.IncompleteReadError:
                return  # the parent closed our stdin: the pool is shutting down
            if isinstance(message, Evaluate):
                # One evaluation at a time: the parent only sends the next after Done/Failed.
                self._evaluation = asyncio.create_task(self._evaluate(message))
            elif isinstance(message, Reply):
                future = self._pending.pop(message.call_id, None)
                if future is not None and not future.done():
                    if message.error is None:
                        future.set_result(message.value)
                    else:
                        future.set_exception(HostError(message.error))

    def _proxy(self, name: str) -> Any:
        async def call(*args: Any) -> Any:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            call_id = next(self._call_ids)
            self._pending[call_id] = future
            try:
                self.send(Call(call_id=call_id, name=name, args=list(args)))
            except Exception:  # unsendable arguments: a rejected promise, not a dead sandbox
                del self._pending[call_id]
                raise
            return await future

        call.__name__ = name
        return call

    async def _evaluate(self, request: Evaluate) -> None:
        from jsrun import JavaScriptError, Runtime, RuntimeConfig

        try:
            # A fresh isolate per evaluation: nothing one step leaves on globalThis reaches another.
            with Runtime(RuntimeConfig(max_heap_size=request.max_heap_bytes)) as runtime:
                self._bind(runtime, request)
                # The newline keeps a trailing `// comment` in the user's code from swallowing
                # the closing brace; user line 1 stays line 1 in stack traces.
                value = await runtime.eval_async(f"(async () => {{ {request.code}\n}})()")
            done = _encoder.encode(Done(value=value))
            if len(done) > request.max_result_bytes:
                # Results go into the event log: a clear failure beats a bloated database.
                self._fail(
                    request,
                    "ResultTooLarge",
                    f"the result is {len(done):,} bytes encoded, over the "
                    f"{request.max_result_bytes:,}-byte limit for a JavaScript result",
                )
            else:
                self._write(frame(done))
        except JavaScriptError as exc:
            self._fail(request, exc.name, exc.message or str(exc), exc.stack)
        except Exception as exc:
            # jsrun's RuntimeTerminated ("Heap limit exceeded"), or a result with no wire form
            # (a function, a symbol...).
            self._fail(request, type(exc).__name__, str(exc))
        finally:
            for future in self._pending.values():
                future.cancel()
            self._pending.clear()

    def _fail(
        self, request: Evaluate, name: str | None, message: str, stack: str | None = None
    ) -> None:
        """Send a Failed whatever the error holds: its text cut to the limit (a 40 MB message
        must arrive as an error, not as a frame too big to send and then a timeout)."""
        limit = request.max_error_bytes
        try:
            self.send(
                Failed(
                    name=None if name is None else self._cut(name, 1024),
                    message=self._cut(message, limit),
                    stack=None if stack is None else self._cut(stack, limit),
                )
            )
        except Exception as exc:  # the parent must hear of the evaluation's end regardless
            unsendable = f"the error could not be sent: {exc!r}"[:1000]
            self.send(Failed(name="SandboxError", message=unsendable, stack=None))

    def _bind(self, runtime: Runtime, request: Evaluate) -> None:
        for name in request.functions:
            runtime.bind_function(name, self._proxy(name))
        if request.bindings:
            # bind_object accepts only mappings; going through one temporary object gives every
            # binding (lists and scalars too) jsrun's own Python -> JS conversion.
            runtime.bind_object(_BINDINGS_GLOBAL, request.bindings)
            runtime.eval(
                f"for (const [k, v] of Object.entries(globalThis.{_BINDINGS_GLOBAL}))"
                f" globalThis[k] = v; delete globalThis.{_BINDINGS_GLOBAL};"
            )


def main(argv: list[str]) -> None:
    memory_limit_mb, max_open_files, parent_pid = (int(arg) for arg in argv)
    _apply_limits(memory_limit_mb, max_open_files, parent_pid)
    # The protocol owns the real stdout; anything else that prints (jsrun, V8, a stray print)
    # lands on stderr, where the parent keeps it for crash reports.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    import jsrun  # noqa: F401  -- import now so a broken install fails startup, not a step

    asyncio.run(_Child(out_fd, _load_limits().cut).serve())
    sys.stderr.flush()
    # Skip interpreter teardown: V8 sometimes crashes at exit, and there is nothing left to save.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
