"""The `durable` command line: inspect runs, replay them, run a worker or a DAG file.

It loads user applications by import path ("module:attr") and never imports the SDK.
Importing this package is cheap: the commands (and what they import) load when `main()` runs,
inside its Ctrl-C handling, so an interrupt at any moment of start-up exits quietly.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def _commands() -> click.Group:
    """The `durable` group with every command registered (importing a module registers it)."""
    from durable.cli import (  # noqa: F401  (they register the commands)
        _approvals,
        _control,
        _diff,
        _external,
        _histories,
        _history,
        _queues,
        _repair,
        _replay,
        _run,
        _runs,
        _schedules,
        _serve,
        _streams,
        _updates,
        _validate,
        _values,
        _visualize,
        _wait,
        _worker,
    )
    from durable.cli._app import cli

    return cli


def main() -> None:
    # While the commands load, a Ctrl-C is remembered as well as raised: Python drops a
    # KeyboardInterrupt raised inside a callback of the import machinery ("Exception
    # ignored"), and the command would then run as if never interrupted.
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    try:
        # Inside the try: a Ctrl-C may land while the handler is being installed, and
        # Python's default handler then raises here.
        signal.signal(signal.SIGINT, interrupt)
        cli = _commands()
    except KeyboardInterrupt:  # nothing was done yet
        received.append(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        sys.stderr.write("interrupted\n")
        sys.exit(INTERRUPTED)
    cli(prog_name="durable")


def __getattr__(name: str) -> Any:
    if name == "cli":
        return _commands()
    raise AttributeError(f"module 'durable.cli' has no attribute {name!r}")


__all__ = ["cli", "main"]
