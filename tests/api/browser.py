"""Helpers for the dashboard's browser tests: the real `durable serve` as a subprocess, the
system's Chromium for Playwright, and a directory for screenshots.

Playwright cannot download its own browsers here, so it drives Debian's `chromium`. Outside
CI a missing browser skips the browser tests with the reason; in CI (tests/cirules.py) it
fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import serving
from cirules import unavailable
from serving import Served

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS_ENV = "DURABLE_TEST_ARTIFACTS"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("no chromium on PATH (install the Debian package `chromium`)")
    return path


def artifacts_dir() -> Path:
    """$DURABLE_TEST_ARTIFACTS, else tests/artifacts/ (kept out of git by its .gitignore)."""
    chosen = os.environ.get(ARTIFACTS_ENV)
    directory = Path(chosen) if chosen else REPO / "tests" / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    if not chosen:
        ignore = directory / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n!.gitignore\n")
    return directory


@contextmanager
def serve(workdir: Path, app: str, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """`durable serve --app APP` (SQLite in `workdir`), as the API tests start it."""
    with serving.serve(workdir, "--app", app, env=env) as served:
        yield served


Server = Served
