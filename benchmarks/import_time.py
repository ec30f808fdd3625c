"""Import time of the entry points a new user meets first, measured with `python -X importtime`.

Each figure is the median over fresh subprocesses of the summed cumulative time of the
top-level imports (what `-X importtime` prints with no indentation), minus the same sum for
`python -c pass` (the interpreter's own start-up: encodings, site). So it is the time spent
importing modules for that command, not the command's work.

    python benchmarks/import_time.py [--runs 5]

Peers measured in the same run, for scale: `import sqlalchemy` (which the SQLite path used to
load) and `import click` (the floor of any command line built on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

Case = tuple[str, list[str]]


def import_seconds(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """The summed cumulative top-level import time of one fresh `python -X importtime` run."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    total = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not name.startswith("  "):  # one space: a top-level import
            total += int(cumulative)
    return total / 1e6


def median_seconds(argv: list[str], env: dict[str, str], cwd: str, runs: int) -> float:
    return statistics.median(import_seconds(argv, env, cwd) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="subprocesses per figure (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "empty.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        env["DURABLE_DATABASE_URL"] = f"sqlite:///{db}"
        # An empty database for `runs list` (created by one command first, so every measured
        # run reads the same file).
        create = (
            "import asyncio, storage\n"
            f"s = storage.open_store({env['DURABLE_DATABASE_URL']!r})\n"
            "asyncio.run(s.open())\nasyncio.run(s.close())"
        )
        subprocess.run([sys.executable, "-c", create], env=env, check=True)
        cases: list[Case] = [
            ("import sdk", ["-c", "import sdk"]),
            ("durable --help", ["-m", "durable", "--help"]),
            ("durable runs list (empty SQLite)", ["-m", "durable", "runs", "list"]),
            ("peer: import sqlalchemy", ["-c", "import sqlalchemy"]),
            ("peer: import click", ["-c", "import click"]),
        ]
        base = median_seconds(["-c", "pass"], env, tmp, args.runs)
        print(f"python {sys.version.split()[0]}, median of {args.runs} fresh processes each")
        print(f"{'interpreter start-up (python -c pass)':40} {base * 1000:7.1f} ms (subtracted)")
        for label, argv in cases:
            seconds = median_seconds(argv, env, tmp, args.runs) - base
            print(f"{label:40} {seconds * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
