"""What DAG steps need from the process running them, made once per worker and shared by its
runs: the JavaScript sandbox pool, an HTTP client, SMTP settings, the user's actions.

Started lazily: a worker that never meets a JavaScript step never starts a sandbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from durable._lazy import lazy_module
from durable._policy import url_password
from durable.js import JsSandboxPool
from durable.runtime._registry import DEFAULT_MAX_CRASHES

from ._deliver import SmtpSettings
from ._expr import has_javascript, syntax_problems
from ._model import DagDefinition
from ._problems import Problem

if TYPE_CHECKING:
    import httpx

    from ._queued import QueuedStarter
else:
    httpx = lazy_module("httpx")  # loaded when first used

HTTP_TIMEOUT = 60.0  # seconds, for HTTP requests without a timeout of their own


class DagServices:
    def __init__(
        self,
        actions: Mapping[str, Callable[..., Any]],
        step_pool: Executor,
        *,
        js_sandboxes: int = 2,
        js_heap_mb: int = 64,
        js_memory_mb: int = 512,
        database_url: str | None = None,
        max_step_crashes: int = DEFAULT_MAX_CRASHES,
    ) -> None:
        self.actions = actions
        # App(max_step_crashes=N): how many times a step may kill the worker's process.
        self.max_step_crashes = max_step_crashes
        # Values no script may inherit under any name: the password of the engine's database
        # (which may have come from --db rather than from a DURABLE_* variable).
        password = url_password(database_url)
        self.secrets: frozenset[str] = frozenset([password] if password else [])
        self.step_pool = step_pool
        self._js_args = (js_sandboxes, js_heap_mb, js_memory_mb)
        self._js: JsSandboxPool | None = None
        self._js_lock = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None
        self._smtp: SmtpSettings | None = None
        self._checked: dict[str, list[Problem]] = {}  # definition fingerprint -> problems
        # Starts a queued step instance's child run in its queue (set by the engine).
        self.start_queued: QueuedStarter | None = None

    async def js(self) -> JsSandboxPool:
        async with self._js_lock:
            if self._js is None:
                size, heap, memory = self._js_args
                pool = JsSandboxPool(size, max_heap_mb=heap, memory_limit_mb=memory)
                await pool.__aenter__()
                self._js = pool
            return self._js

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # A silent endpoint must not hold a step (or a notification) forever;
            # http.request's params.timeout overrides this per request.
            self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=True)
        return self._http

    @property
    def smtp(self) -> SmtpSettings:
        if self._smtp is None:
            self._smtp = SmtpSettings.from_env()
        return self._smtp

    async def syntax_problems(self, definition: DagDefinition, key: str) -> list[Problem]:
        """The definition's JavaScript syntax errors, checked once per definition (`key`: its
        fingerprint, computed once at registration)."""
        found = self._checked.get(key)
        if found is None:
            found = await syntax_problems(definition, self.js) if has_javascript(definition) else []
            self._checked[key] = found
        return found

    async def aclose(self) -> None:
        js, self._js = self._js, None
        http, self._http = self._http, None
        if js is not None:
            await js.aclose()
        if http is not None:
            await http.aclose()
