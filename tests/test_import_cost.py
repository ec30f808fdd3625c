"""What the first commands import: a SQLite user's `import sdk`, `durable --help` and
`durable runs list` load neither the PostgreSQL store (asyncpg, SQLAlchemy) nor the HTTP stack
(litestar, uvicorn) nor what only some runs need (httpx, PyYAML). Checked on sys.modules in a
fresh interpreter: a behaviour, not a timing (benchmarks/import_time.py has the figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# pydantic_ai (and pydantic): only durable agents need them, loaded by App.agent/sdk.DurableAgent.
HEAVY = ["sqlalchemy", "asyncpg", "litestar", "uvicorn", "httpx", "yaml", "pydantic_ai", "pydantic"]

# Runs `code`, then prints which HEAVY modules were really imported (a module the stdlib's
# LazyLoader placed in sys.modules but nobody touched yet does not count).
PROBE = """
import importlib.util, json, sys
{code}
def loaded(name):
    module = sys.modules.get(name)
    return module is not None and not isinstance(module, importlib.util._LazyModule)
sys.stdout.write("\\nLOADED " + json.dumps([n for n in {heavy!r} if loaded(n)]) + "\\n")
"""

CLI = """
import sys
from durable.cli import main
sys.argv = ["durable", *{argv!r}]
try:
    main()
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""


def loaded_after(code: str, tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["DURABLE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.rsplit("\nLOADED ", 1)[1]
    found: list[str] = json.loads(line)
    return found


@pytest.fixture
def empty_db(tmp_path: Path) -> Path:
    """An empty SQLite database in tmp_path (created by opening it once)."""
    code = (
        "import asyncio, storage\n"
        f"s = storage.open_store({str(tmp_path / 'empty.db')!r})\n"
        "asyncio.run(s.open()); asyncio.run(s.close())"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    return tmp_path


@pytest.mark.parametrize(
    "code",
    [
        "import sdk",
        "import sdk; app = sdk.App('sqlite:///unused.db'); sdk.RunTimedOut, sdk.InvalidInputError",
        CLI.format(argv=["--help"]),
        CLI.format(argv=["runs", "list"]),
        CLI.format(argv=["runs", "list", "--json"]),
    ],
    ids=["import sdk", "an App", "durable --help", "durable runs list", "runs list --json"],
)
def test_the_first_commands_import_no_backend_and_no_http_stack(code: str, empty_db: Path) -> None:
    assert loaded_after(code, empty_db) == []


def test_the_probe_sees_a_backend_that_is_used(tmp_path: Path) -> None:
    # The check above can fail: asking for PostgreSQL, or sending HTTP, loads them.
    assert loaded_after("import storage; storage.PostgresStore", tmp_path) == [
        "sqlalchemy",
        "asyncpg",
    ]
    assert "httpx" in loaded_after(
        "from durable.dag._http import httpx; httpx.URL('http://x')", tmp_path
    )
    # And durable agents load Pydantic AI when asked for, not before.
    assert "pydantic_ai" in loaded_after("import sdk; sdk.DurableAgent", tmp_path)
