"""A fixed pool of JavaScript sandboxes; the only way the engine runs untrusted JS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

from durable._limits import MAX_ERROR_FIELD_BYTES
from durable.js._child import Evaluate
from durable.js._errors import SandboxError
from durable.js._sandbox import Sandbox


class JsSandboxPool:
    """Owns ``size`` sandbox subprocesses; each evaluation gets one of them and a fresh V8 runtime.

    ``max_heap_mb`` is V8's heap limit per evaluation; a result whose encoding is over
    ``max_result_mb`` fails with a JsError named ResultTooLarge. ``memory_limit_mb`` caps each
    sandbox process as a whole (RLIMIT_DATA), which is what bounds typed arrays and huge
    strings: V8's heap limit does not count them. A sandbox that dies or times out is killed
    and restarted on its next use; the pool stays usable.
    """

    def __init__(
        self,
        size: int = 2,
        *,
        max_heap_mb: int = 64,
        memory_limit_mb: int = 512,
        max_result_mb: int = 8,
        max_open_files: int = 64,
        startup_timeout: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError("a sandbox pool needs at least one sandbox")
        if max_heap_mb >= memory_limit_mb:
            raise ValueError("max_heap_mb must be below memory_limit_mb, or V8 dies before it")
        self._max_heap_bytes = max_heap_mb * 1024 * 1024
        self._max_result_bytes = max_result_mb * 1024 * 1024
        self._sandboxes = [
            Sandbox(
                memory_limit_mb=memory_limit_mb,
                max_open_files=max_open_files,
                startup_timeout=startup_timeout,
            )
            for _ in range(size)
        ]
        self._idle: asyncio.Queue[Sandbox] = asyncio.Queue()
        self._open = False

    async def __aenter__(self) -> Self:
        # Start them all now, so a broken setup fails at startup rather than at the first step.
        results = await asyncio.gather(
            *(sandbox.start() for sandbox in self._sandboxes), return_exceptions=True
        )
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors:
            await self.aclose()
            raise errors[0]
        for sandbox in self._sandboxes:
            self._idle.put_nowait(sandbox)
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._open = False
        await asyncio.gather(*(sandbox.close() for sandbox in self._sandboxes))

    @property
    def pids(self) -> list[int]:
        """Process ids of the live sandboxes (for monitoring, and for tests)."""
        return [s.pid for s in self._sandboxes if s.alive and s.pid is not None]

    async def evaluate(
        self,
        code: str,
        *,
        bindings: Mapping[str, Any] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """Run ``code`` as the body of an async JS function and return its result.

        Each ``bindings`` entry becomes a JS global holding a copy of the value. Each
        ``functions`` entry becomes a JS global function returning a promise: the call is sent to
        this (the parent) process, where the function runs (async functions on the event loop,
        plain ones in a thread) and its result or exception goes back to the JS. The timeout
        covers the whole evaluation, integration calls included.

        Raises JsError (the JS threw), JsTimeout, or SandboxCrashed.
        """
        if not self._open:
            raise SandboxError("the sandbox pool is not open (use it as `async with`)")
        bindings = dict(bindings or {})
        functions = dict(functions or {})
        _check_names(bindings, functions)
        request = Evaluate(
            code=code,
            bindings=bindings,
            functions=sorted(functions),
            max_heap_bytes=self._max_heap_bytes,
            max_result_bytes=self._max_result_bytes,
            max_error_bytes=MAX_ERROR_FIELD_BYTES,
        )
        sandbox = await self._idle.get()
        try:
            if not sandbox.alive:
                # Replaced lazily: the evaluation that killed it reports at once, and the restart
                # cost falls on the next one.
                await sandbox.start()
            return await sandbox.run(request, functions, timeout)
        finally:
            self._idle.put_nowait(sandbox)


def _check_names(bindings: Mapping[str, Any], functions: Mapping[str, Any]) -> None:
    for name in [*bindings, *functions]:
        # They become JS globals; rejecting odd names here beats a confusing JS error later.
        if not (isinstance(name, str) and name.isascii() and name.isidentifier()):
            raise ValueError(f"{name!r} cannot be a JavaScript global name")
        if name in _JS_RESERVED or name.startswith("__"):
            # '__' is jsrun's (`__bootstrap`, `__jsrunCallAsync`...) and ours.
            raise ValueError(f"{name!r} cannot be a JavaScript global name: it is reserved")
    clash = bindings.keys() & functions.keys()
    if clash:
        raise ValueError(f"names both bound and proxied: {sorted(clash)}")


# JS reserved words and the globals a binding must not shadow.
_JS_RESERVED_WORDS = """
    await break case catch class const continue debugger default delete do else enum export
    extends false finally for function if implements import in instanceof interface let new
    null package private protected public return static super switch this throw true try
    typeof var void while with yield undefined NaN Infinity globalThis eval arguments
"""
_JS_RESERVED = frozenset(_JS_RESERVED_WORDS.split())
