"""A throwaway PostgreSQL server for the tests, and the pytest fixtures that use it.

Loaded as a pytest plugin (`-p pgserver` in pyproject), so every test module can ask for
`pg_url` (the server, one per session) or `pg_fresh_url` (a private schema on it, one per test).

Where the server comes from, in order:

1. $DURABLE_TEST_PG_URL: an existing server (e.g. the one .ci/run starts). It must answer.
2. Debian's binaries (/usr/lib/postgresql/*/bin): initdb into a temp dir and start a server on
   127.0.0.1 on a free port, with fsync on (the benchmarks measure durable commits), stopped
   with `pg_ctl stop -m fast` and deleted at the end of the session. initdb refuses to run as
   root, so as root the server runs as the unprivileged user `durable-pg` (created if missing).
   Missing binaries are installed with apt-get only as root and in CI or with
   DURABLE_TEST_PG_INSTALL=1: a developer's machine is never changed behind their back.

When no server can be had, PostgreSQL tests skip with the reason, except in CI (tests/cirules.py),
where they fail: CI must run them. A test that restarts the server (`pg_restartable`) gets a
throwaway server of its own when the session's is someone else's. Also a command line for
scripts (`.ci/run`):

    python tests/pgserver.py start STATE_FILE   # prints the URL
    python tests/pgserver.py stop STATE_FILE
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
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
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import pytest
from cirules import in_ci, unavailable

URL_ENV = "DURABLE_TEST_PG_URL"
INSTALL_ENV = "DURABLE_TEST_PG_INSTALL"
OS_USER = "durable-pg"  # runs the server when the tests run as root
ROLE = "durable"  # the server's superuser role, trusted on loopback only
DATABASE = "durable_test"


class PgUnavailable(Exception):
    """No PostgreSQL server can be started here; the message says why and what to do."""


@dataclass(frozen=True)
class PgServer:
    url: str
    bindir: str
    root: str  # temp dir holding the data directory, the socket and the log
    user: str | None  # OS user the server runs as (None: the current user)

    @property
    def datadir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def logfile(self) -> str:
        return os.path.join(self.root, "server.log")


def find_bindir() -> str | None:
    """The newest Debian PostgreSQL server binaries, or None."""
    candidates = [
        d
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres"))
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda d: _version_key(Path(d).parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", name)) or (0,)


def _install() -> str:
    """apt-get install postgresql, without letting the package start a cluster of its own."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _check(["apt-get", "update", "-q"], env=env, what="apt-get update")
    _check(["apt-get", "install", "-y", "-q", "postgresql-common"], env=env, what="apt-get")
    # Debian's postinst would create and start a 'main' cluster: a server nobody stops.
    conf = Path("/etc/postgresql-common/createcluster.conf")
    text = conf.read_text() if conf.exists() else ""
    text = re.sub(r"(?m)^\s*#?\s*create_main_cluster\s*=.*$", "", text)
    conf.write_text(text.rstrip("\n") + "\ncreate_main_cluster = false\n")
    _check(["apt-get", "install", "-y", "-q", "postgresql"], env=env, what="apt-get")
    bindir = find_bindir()
    if bindir is None:
        raise PgUnavailable("installed the 'postgresql' package but found no server binaries")
    return bindir


def _check(cmd: list[str], *, what: str, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PgUnavailable(f"{what} failed: {exc}") from None
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-2000:]
        raise PgUnavailable(f"{what} failed (exit {proc.returncode}): {output}")
    return proc.stdout


def _ensure_os_user() -> str:
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        _check(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", OS_USER],
            what=f"creating the OS user {OS_USER}",
        )  # fmt: skip
    return OS_USER


def _as_user(user: str | None, cmd: list[str]) -> list[str]:
    return cmd if user is None else ["runuser", "-u", user, "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start() -> PgServer:
    """Start a throwaway server; raises PgUnavailable with the reason."""
    bindir = find_bindir()
    root_user = os.geteuid() == 0
    if bindir is None:
        if not (root_user and (in_ci() or os.environ.get(INSTALL_ENV) == "1")):
            raise PgUnavailable(
                "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; install the "
                f"Debian package 'postgresql', point {URL_ENV} at a server, or (as root) set "
                f"{INSTALL_ENV}=1 to let the tests install it"
            )
        bindir = _install()
    user = _ensure_os_user() if root_user else None
    root = tempfile.mkdtemp(prefix="durable-pg-")
    if user is not None:
        shutil.chown(root, user, user)
    server = PgServer(url="", bindir=bindir, root=root, user=user)
    # Password authentication on TCP, as in production: the tests of bad credentials need a
    # server that can refuse them. (The password is in the URL; the store must mask it.)
    password = secrets.token_hex(12)
    pwfile = os.path.join(root, "pwfile")
    Path(pwfile).write_text(password + "\n")
    if user is not None:
        shutil.chown(pwfile, user, user)
    try:
        # --no-sync only skips initdb's own final flush of the template files (this cluster is
        # thrown away); the server itself runs with fsync on.
        _check(
            _as_user(user, [f"{bindir}/initdb", "-D", server.datadir, "-U", ROLE,
                            f"--pwfile={pwfile}", "--auth-local=trust",
                            "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale",
                            "--no-sync"]),
            what="initdb",
        )  # fmt: skip
        port = _launch(server)
        url = f"postgresql://{ROLE}:{password}@127.0.0.1:{port}/{DATABASE}"
        _check(
            [f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, DATABASE],
            what="createdb",
            env={**os.environ, "PGPASSWORD": password},
        )
        return PgServer(url=url, bindir=bindir, root=root, user=user)
    except BaseException:
        stop(server)
        raise


def _launch(server: PgServer) -> int:
    last = ""
    for _ in range(3):  # the free port may be taken between our probe and the server's bind
        port = _free_port()
        options = (
            f"-h 127.0.0.1 -p {port} -k {server.root} -c fsync=on -c synchronous_commit=on "
            "-c max_connections=200"
        )
        cmd = [f"{server.bindir}/pg_ctl", "start", "-D", server.datadir, "-l", server.logfile]
        proc = subprocess.run(
            _as_user(server.user, [*cmd, "-w", "-t", "60", "-o", options]),
            capture_output=True,
            text=True,
            timeout=90,
        )
        if proc.returncode == 0:
            return port
        last = _tail(server.logfile) or (proc.stdout + proc.stderr)
    raise PgUnavailable(f"the PostgreSQL server did not start: {last.strip()}")


def _tail(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def stop(server: PgServer) -> None:
    """Stop the server (if it runs) and delete its files. Never leaves a postgres behind."""
    pidfile = os.path.join(server.datadir, "postmaster.pid")
    if os.path.exists(pidfile):
        cmd = [
            f"{server.bindir}/pg_ctl",
            "stop",
            "-D",
            server.datadir,
            "-m",
            "fast",
            "-w",
            "-t",
            "30",
        ]
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(_as_user(server.user, cmd), capture_output=True, timeout=60)
        _kill_leftover(pidfile)
    shutil.rmtree(server.root, ignore_errors=True)


def restart(server: PgServer, *, down: float = 1.0) -> None:
    """Stop the server (`pg_ctl stop -m fast`: every connection is cut), stay down `down`
    seconds, and start it again on the same port with the same options (from postmaster.opts,
    which the first start wrote). Returns once it accepts connections again."""
    ctl = [f"{server.bindir}/pg_ctl", "-D", server.datadir, "-w", "-t", "60"]
    opts = Path(server.datadir, "postmaster.opts").read_text().split(None, 1)[1].strip()
    _check(_as_user(server.user, [*ctl, "stop", "-m", "fast"]), what="pg_ctl stop")
    time.sleep(down)
    start = [*ctl, "start", "-l", server.logfile, "-o", _options_of(opts)]
    _check(_as_user(server.user, start), what="pg_ctl start")


def _options_of(opts: str) -> str:
    """postmaster.opts' arguments without the -D "datadir" that pg_ctl passes itself."""
    return re.sub(r'(^|\s)"?-D"?\s+"[^"]*"', " ", opts).replace('"', "").strip()


def _kill_leftover(pidfile: str) -> None:
    try:
        pid = int(Path(pidfile).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGKILL)  # the postmaster; its children exit when it is gone
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    await conn.close()


async def _drop_schemas(url: str, schemas: list[str]) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        for name in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}schema={schema}"


class PgSession:
    """The session's server and the schemas handed out on it."""

    def __init__(self, url: str, external: bool, server: PgServer | None = None) -> None:
        self.url = url
        self.external = external
        self.server = server  # None: someone else's server ($DURABLE_TEST_PG_URL)
        self.schemas: list[str] = []

    def fresh_url(self) -> str:
        """A URL for a schema nobody has used: each test gets an empty database of its own
        without the cost of CREATE DATABASE (the store creates the schema on open)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.schemas.append(name)
        return with_schema(self.url, name)


@pytest.fixture(scope="session")
def _pg_session() -> Iterator[PgSession]:
    external = os.environ.get(URL_ENV, "").strip()
    if external:
        try:
            asyncio.run(_ping(external))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            pytest.fail(f"{URL_ENV} is set but its server does not answer: {exc}")
        session = PgSession(external, external=True)
        yield session
        # Someone else's server: leave it as we found it.
        if session.schemas:
            asyncio.run(_drop_schemas(external, session.schemas))
        return
    try:
        server = start()
    except PgUnavailable as exc:
        unavailable(f"no PostgreSQL server could be started: {exc}")
    try:
        yield PgSession(server.url, external=False, server=server)
    finally:
        stop(server)


@pytest.fixture(scope="session")
def pg_url(_pg_session: PgSession) -> str:
    """postgresql://... of the session's server (shared by every test: prefer pg_fresh_url)."""
    return _pg_session.url


@pytest.fixture
def pg_fresh_url(_pg_session: PgSession) -> str:
    """A URL whose store lives in a schema of its own, created on first open."""
    return _pg_session.fresh_url()


@pytest.fixture
def pg_schema_factory(_pg_session: PgSession) -> PgSession:
    """For tests that need several fresh schemas: call .fresh_url() for each."""
    return _pg_session


@pytest.fixture
def pg_restartable(_pg_session: PgSession) -> Iterator[PgSession]:
    """A server the test may restart (`restart(session.server)`), with `.fresh_url()` for its
    schemas: the session's own (other tests' pools reconnect afterwards), or, when that is
    someone else's ($DURABLE_TEST_PG_URL, e.g. the one .ci/run starts), a throwaway server
    of the test's own, stopped after it. Someone else's server is never restarted."""
    if _pg_session.server is not None:
        yield _pg_session
        return
    try:
        server = start()
    except PgUnavailable as exc:
        why = f"{URL_ENV}'s server is not this session's to restart"
        unavailable(f"no throwaway server for a test that restarts one ({why}): {exc}")
    try:
        yield PgSession(server.url, external=False, server=server)
    finally:
        stop(server)


def _main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(f"usage: {argv[0]} start|stop STATE_FILE", file=sys.stderr)
        return 2
    state = Path(argv[2])
    if argv[1] == "start":
        try:
            server = start()
        except PgUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        state.write_text(json.dumps(asdict(server)))
        print(server.url)
        return 0
    text = state.read_text().strip() if state.exists() else ""
    if text:  # empty: the start failed (or never wrote it); nothing runs
        stop(PgServer(**json.loads(text)))
    state.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
