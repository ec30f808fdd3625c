"""The private virtual environment that DBOS runs in.

DBOS must never become a dependency of the project, so the benchmark installs it
into a venv of its own, outside the work tree (nothing there for git, mypy or ruff
to trip over), and rebuilds it only when the requested version or the interpreter
changes.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

# Pinned so that numbers from different days compare one DBOS with itself;
# override with --dbos-requirement to measure another release.
DBOS_REQUIREMENT = "dbos==3.4.0"
# DBOS reaches PostgreSQL through psycopg 3. dbos 3.x already depends on psycopg[binary]
# (which bundles libpq), but an older or custom --dbos-requirement may not: the PostgreSQL
# column installs it explicitly rather than trusting the transitive dependency.
PSYCOPG_REQUIREMENT = "psycopg[binary]>=3.1"
_MARKER = "durable-bench-marker.txt"


def bench_cache_dir(name: str) -> Path:
    """A benchmark's own directory under the user's cache, outside the work tree."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "durable-bench" / name


def default_venv_dir() -> Path:
    return bench_cache_dir("dbos-venv")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_dbos_venv(venv: Path, requirement: str, *, postgres: bool = False) -> Path:
    """Create or update the venv so that it holds `requirement` (and, for `postgres`, a
    PostgreSQL driver); return its python."""
    python = venv_python(venv)
    marker = venv / _MARKER
    interpreter = f"{sys.executable} {platform.python_version()}"
    wanted = f"{requirement}\n{interpreter}\n"
    lines = marker.read_text().splitlines() if marker.exists() else []
    have = "".join(f"{line}\n" for line in lines[:2])
    if python.exists() and have == wanted and (not postgres or PSYCOPG_REQUIREMENT in lines):
        return python
    print(f"setting up DBOS venv in {venv} ({requirement})...", file=sys.stderr, flush=True)
    if not python.exists() or lines[1:2] != [interpreter]:
        # Built from the project's own interpreter so that both engines run on one
        # Python; --clear rebuilds a venv left by another interpreter.
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    extras = [PSYCOPG_REQUIREMENT] if postgres or PSYCOPG_REQUIREMENT in lines else []
    subprocess.run([*pip, requirement, *extras], check=True)
    marker.write_text(wanted + "".join(f"{e}\n" for e in extras))
    return python
