"""The `durable` command line: inspect runs, replay them, run a worker.

It loads user applications by import path ("module:attr") and never imports the SDK."""

from durable.cli import _replay, _runs, _validate, _worker  # noqa: F401  (they register the commands)
from durable.cli._app import cli


def main() -> None:
    cli(prog_name="durable")


__all__ = ["cli", "main"]
