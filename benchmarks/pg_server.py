"""A throwaway PostgreSQL server for the benchmark, and a fresh database per measurement.

Debian's server binaries (/usr/lib/postgresql/*/bin): initdb into a temp dir, a server on
127.0.0.1 on a free port with fsync=on and synchronous_commit=on (the benchmark measures
durable commits, so nothing may be cheaper than production), stopped and deleted on exit.
initdb refuses to run as root, so as root the server runs as the unprivileged OS user
`durable-pg` (created if missing), the same user the tests' server uses.

Kept separate from tests/pgserver.py on purpose: the benchmark must not import the test
suite (pytest is not a requirement of running it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# asyncpg has no type information; pyproject may or may not say so yet (the
# PostgreSQL branch adds an override), hence the unused-ignore as well.
import asyncpg  # type: ignore[import-untyped, unused-ignore]

URL_ENV = "DURABLE_BENCH_PG_URL"
OS_USER = "durable-pg"
ROLE = "durable"
# The workers' pools (10 connections each), DBOS's pool (20) and the raw peer fit easily.
MAX_CONNECTIONS = 200


class PgUnavailable(Exception):
    """No PostgreSQL server can be started here; the message says why and what to do."""


@dataclass(frozen=True)
class Server:
    url: str  # the admin URL (database "postgres"), password included
    bindir: str
    root: str  # temp dir: data directory, socket, log
    user: str | None  # OS user the server runs as (None: the current user)

    @property
    def datadir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def logfile(self) -> str:
        return os.path.join(self.root, "server.log")


def _bindir() -> str:
    found = [
        d
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres"))
    ]
    if not found:
        raise PgUnavailable(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: install Debian's "
            f"'postgresql' package, or point --pg-url / ${URL_ENV} at a server"
        )
    # The newest major version: "15" < "16", compared as numbers.
    return max(found, key=lambda d: [int(p) for p in re.findall(r"\d+", Path(d).parent.name)])


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise PgUnavailable(f"{what} failed ({proc.returncode}): {(proc.stdout + proc.stderr)}")


def _as_user(user: str | None, cmd: list[str]) -> list[str]:
    return cmd if user is None else ["runuser", "-u", user, "--", *cmd]


def _os_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        _run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", OS_USER],
            f"creating the OS user {OS_USER}",
        )  # fmt: skip
    return OS_USER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start() -> Server:
    bindir, user = _bindir(), _os_user()
    root = tempfile.mkdtemp(prefix="durable-bench-pg-")
    server = Server("", bindir, root, user)
    # A password even on loopback: a superuser login is a shell as the server's OS user,
    # and this machine may be shared for the run's duration.
    password = secrets.token_hex(12)
    pwfile = os.path.join(root, "pwfile")
    Path(pwfile).write_text(password + "\n")
    if user is not None:
        shutil.chown(root, user, user)
        shutil.chown(pwfile, user, user)
    try:
        # --no-sync only skips initdb's final flush of a cluster that is thrown away; the
        # server itself runs with fsync on.
        _run(
            _as_user(user, [f"{bindir}/initdb", "-D", server.datadir, "-U", ROLE,
                            f"--pwfile={pwfile}", "--auth-local=trust",
                            "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale",
                            "--no-sync"]),
            "initdb",
        )  # fmt: skip
        port = _launch(server)
    except BaseException:
        stop(server)
        raise
    return Server(f"postgresql://{ROLE}:{password}@127.0.0.1:{port}/postgres", bindir, root, user)


def _launch(server: Server) -> int:
    last = ""
    for _ in range(3):  # the free port may be taken between our probe and the server's bind
        port = _free_port()
        options = (
            f"-h 127.0.0.1 -p {port} -k {server.root} -c fsync=on -c synchronous_commit=on "
            f"-c max_connections={MAX_CONNECTIONS}"
        )
        cmd = [f"{server.bindir}/pg_ctl", "start", "-D", server.datadir, "-l", server.logfile]
        cmd += ["-w", "-t", "60", "-o", options]
        proc = subprocess.run(
            _as_user(server.user, cmd), capture_output=True, text=True, timeout=90, check=False
        )
        if proc.returncode == 0:
            return port
        last = proc.stdout + proc.stderr
        with contextlib.suppress(OSError):
            last = Path(server.logfile).read_text(errors="replace")[-2000:]
    raise PgUnavailable(f"the PostgreSQL server did not start: {last.strip()}")


def stop(server: Server) -> None:
    """Stop the server and delete its files; SIGKILL the postmaster if pg_ctl can't."""
    pidfile = os.path.join(server.datadir, "postmaster.pid")
    if os.path.exists(pidfile):
        cmd = [f"{server.bindir}/pg_ctl", "stop", "-D", server.datadir, "-m", "fast", "-w"]
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(_as_user(server.user, cmd), capture_output=True, timeout=60)
        with contextlib.suppress(OSError, ValueError, IndexError, ProcessLookupError):
            pid = int(Path(pidfile).read_text().split()[0])  # still there: pg_ctl failed
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)  # raises ProcessLookupError once it is gone
                time.sleep(0.05)
    shutil.rmtree(server.root, ignore_errors=True)


@contextlib.contextmanager
def admin_url(given: str | None) -> Iterator[str]:
    """The URL of a server to create databases on: `given`, else one started (and stopped
    on exit, including on SIGTERM) for this run."""
    if given:
        yield given
        return
    server = start()
    previous = signal.getsignal(signal.SIGTERM)
    # SIGTERM's default would skip the finally below and leave the server running.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        yield server.url
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop(server)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def mask(url: str) -> str:
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url


async def create_database(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin, timeout=30)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin, timeout=30)
    try:
        # FORCE: a measurement process killed by the timeout may leave sessions behind.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=30)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
