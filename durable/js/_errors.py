"""Errors of JavaScript steps. A sandbox's death never surfaces as anything but these."""

from __future__ import annotations

import signal

from durable._errors import DurableError


class SandboxError(DurableError):
    """Base class: the evaluation did not produce a value."""


class JsError(SandboxError):
    """The JavaScript threw; ``name``, ``message`` and ``stack`` are V8's."""

    def __init__(self, message: str, stack: str | None = None, name: str | None = None) -> None:
        super().__init__(f"{name}: {message}" if name else message)
        self.message = message
        self.stack = stack
        self.name = name

    @property
    def details(self) -> dict[str, str | None]:
        """Recorded with the step's failure (durable._codec.error_info): V8's own account."""
        return {"js_error": self.name, "js_message": self.message, "js_stack": self.stack}


class JsTimeout(SandboxError):
    """The evaluation ran past its timeout; its sandbox was killed and will be replaced."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"JavaScript evaluation timed out after {timeout:g}s; sandbox killed")
        self.timeout = timeout


class SandboxCrashed(SandboxError):
    """The sandbox process died mid-evaluation (V8 abort, out of memory, signal...)."""

    def __init__(self, returncode: int | None, detail: str = "") -> None:
        self.returncode = returncode
        self.signal: int | None = -returncode if returncode is not None and returncode < 0 else None
        super().__init__(
            f"JavaScript sandbox died ({_describe(returncode)})" + (f": {detail}" if detail else "")
        )


class SandboxStartError(SandboxError):
    """A sandbox process could not be started (bad interpreter, jsrun missing...)."""


def _describe(returncode: int | None) -> str:
    if returncode is None:
        return "exit status unknown"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
