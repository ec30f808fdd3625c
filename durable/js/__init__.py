"""JavaScript steps: untrusted JS runs in sandbox subprocesses, never in the engine's process."""

from durable.js._errors import JsError, JsTimeout, SandboxCrashed, SandboxError, SandboxStartError
from durable.js._pool import JsSandboxPool

__all__ = [
    "JsError",
    "JsSandboxPool",
    "JsTimeout",
    "SandboxCrashed",
    "SandboxError",
    "SandboxStartError",
]
