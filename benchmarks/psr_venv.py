"""The private virtual environment that python-script-runner (seed 002's engine) runs in.

Like DBOS (dbos_venv.py), it is never a dependency of the project: the DAG benchmark
installs it into a venv of its own under the user's cache, outside the work tree, and
rebuilds it only when the requested version or the interpreter changes.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

from dbos_venv import bench_cache_dir, venv_python

# Pinned so that numbers from different days compare one release with itself.
PSR_REQUIREMENT = "python-script-runner==7.5.0"
_MARKER = "durable-bench-marker.txt"


def default_venv_dir() -> Path:
    return bench_cache_dir("psr-venv")


def ensure_psr_venv(venv: Path, requirement: str = PSR_REQUIREMENT) -> Path:
    """Create or update the venv so that it holds `requirement`; return its python.

    Raises subprocess.CalledProcessError when pip cannot install it (e.g. offline).
    """
    python = venv_python(venv)
    marker = venv / _MARKER
    wanted = f"{requirement}\n{sys.executable} {platform.python_version()}\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"setting up python-script-runner venv in {venv} ({requirement})...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, requirement], check=True, timeout=600)
    marker.write_text(wanted)
    return python
