"""The `durable` command group, the options every command shares, and the one place where the
project's errors become a one-line "error: ..." and exit status 2."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any, NamedTuple, TypeVar

import click
import msgspec

from durable._engine import URL_ENV, Engine
from durable._errors import DurableError
from durable._options import WorkerOptions
from durable._views import plain
from durable.cli._escape import escape_controls
from durable.runtime._registry import Registry
from storage import SQLiteStore, StorageError, Store

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

USER_ERROR = 2
DIVERGED = 1


class CLIError(click.ClickException):
    """A user error: printed as one line on stderr, never with a traceback."""

    exit_code = USER_ERROR

    def __init__(self, message: str) -> None:
        # Messages from lower layers may span lines; the contract is one line.
        super().__init__(" ".join(message.split("\n")).strip())

    def show(self, file: IO[Any] | None = None) -> None:
        # The message may quote stored text (a step's error): no control sequence of it runs.
        click.echo(f"error: {escape_controls(self.format_message())}", file=file or sys.stderr)


class Interrupted(click.ClickException):
    """Ctrl-C before a command installed its own handling (a worker's start, a command's
    work): one line and status 130, instead of a traceback or click's "Aborted!"."""

    exit_code = 130  # 128 + SIGINT

    def __init__(self) -> None:
        super().__init__("interrupted")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo("interrupted", file=file or sys.stderr)


class DurableGroup(click.Group):
    """A group whose commands' user errors (storage, engine, loader) print as CLIError."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None
        except (StorageError, DurableError) as exc:
            raise CLIError(str(exc)) from None
        except msgspec.DecodeError as exc:
            # A stored value nested inside an event (input, result) that no longer decodes.
            raise CLIError(
                f"a stored value cannot be decoded, the database is damaged: {exc}"
            ) from None


@dataclass(slots=True)
class Settings:
    db: str | None = None


DB_HELP = f"Database URL (default: ${URL_ENV}, else ./durable.db)."


def _given_db(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # `--db ""` (an unset shell variable, a typo) must not quietly mean ./durable.db; an
    # empty $DURABLE_DATABASE_URL is the same as an unset one, by the usual convention.
    if value is not None and not value.strip():
        raise CLIError(
            "--db is empty; give a database URL (e.g. --db sqlite:///durable.db), or leave "
            f"--db out to use ${URL_ENV}, else ./durable.db"
        )
    return value


def db_option(fn: F) -> F:
    """--db on a command; it wins over the group's --db."""
    decorated: F = click.option(
        "--db", "db", metavar="URL", default=None, help=DB_HELP, callback=_given_db
    )(fn)
    return decorated


def json_option(fn: F) -> F:
    decorated: F = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (shapes in docs/cli.md)."
    )(fn)
    return decorated


class LoadedApp(NamedTuple):
    url: str | None
    registry: Registry
    worker_options: WorkerOptions


def with_app(ctx: click.Context, db: str | None, app_path: str | None) -> LoadedApp:
    """The database URL, registry and worker options of a command that may load an
    application: the app's (else an empty registry and the default options), and its
    database unless --db or $DURABLE_DATABASE_URL."""
    from durable._loader import load_app  # importing user code only when asked to

    url = chosen_url(ctx, db)
    if app_path is None:
        return LoadedApp(url, Registry(), WorkerOptions())
    app = load_app(app_path)
    url = url or os.environ.get(URL_ENV) or app.database_url
    return LoadedApp(url, app.registry, app.worker_options)


def chosen_url(ctx: click.Context, db: str | None) -> str | None:
    """The --db given on the command, else on the group; None if neither."""
    if db:
        return db
    settings = ctx.find_object(Settings)
    return settings.db if settings is not None and settings.db else None


@click.group(cls=DurableGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db", metavar="URL", default=None, help=DB_HELP, callback=_given_db)
@click.version_option(package_name="durable", prog_name="durable")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """durable: inspect, replay and execute durable workflow runs."""
    ctx.obj = Settings(db=db)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def reading(url: str | None, registry: Registry | None = None) -> AsyncIterator[Engine]:
    """A client-only engine (no worker: reading never executes a run)."""
    engine = Engine(url, registry or Registry(), run_worker=False)
    _require_existing(engine.store)
    if isinstance(engine.store, SQLiteStore):
        # A write that waits for another process's lock says so on stderr, and gives up after
        # a minute (unless the URL's ?lock_timeout says otherwise) rather than hang.
        engine.store.on_lock_wait = lambda line: click.echo(line, err=True)
        if engine.store.lock_timeout is None:
            engine.store.lock_timeout = 60.0
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


def _require_existing(store: Store) -> None:
    # Opening a SQLite store creates the file (or initializes an empty one); a read-only
    # command pointed at the wrong place should say so rather than show an empty database.
    if isinstance(store, SQLiteStore) and not os.path.exists(store.path):
        where = os.path.dirname(os.path.abspath(store.path))
        hint = "" if os.path.isdir(where) else f" (directory {where} does not exist)"
        raise CLIError(f"no database at {store.path}{hint}; pass --db URL or set {URL_ENV}")
    if isinstance(store, SQLiteStore) and os.path.getsize(store.path) == 0:
        raise CLIError(f"no database at {store.path} (the file is empty); pass --db URL")


def emit_json(data: Any) -> None:
    """JSON to stdout, bypassing rich so that nothing is wrapped or highlighted."""
    try:
        encoded = msgspec.json.encode(data)
    except TypeError:  # a recorded value with map keys JSON can't have
        encoded = msgspec.json.encode(plain(data))
    text = msgspec.json.format(encoded, indent=2)
    sys.stdout.write(text.decode() + "\n")
    sys.stdout.flush()
