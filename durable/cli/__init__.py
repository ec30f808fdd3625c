"""The `durable` command line: inspect runs, replay them, run a worker or a DAG file.

It loads user applications by import path ("module:attr") and never imports the SDK."""

from durable.cli import (  # noqa: F401  (they register the commands)
    _control,
    _diff,
    _history,
    _repair,
    _replay,
    _run,
    _runs,
    _serve,
    _validate,
    _visualize,
    _worker,
)
from durable.cli._app import cli


def main() -> None:
    cli(prog_name="durable")


__all__ = ["cli", "main"]
