"""`durable serve`: the HTTP API and the web dashboard, under uvicorn, until Ctrl-C/SIGTERM."""

from __future__ import annotations

import errno
import socket

import click

from durable.cli._app import CLIError, cli, db_option, with_app
from durable.cli._policy import apply_policy, policy_options


def _reserve(host: str, port: int) -> socket.socket:
    """Bind host:port the way uvicorn will (SO_REUSEADDR), so a busy port is one clear error
    before anything is loaded or printed; the caller closes it just before uvicorn binds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CLIError(f"port {port} on {host} is in use; choose another with --port") from None
        if exc.errno == errno.EACCES:
            raise CLIError(
                f"no permission to listen on port {port} on {host}; use --port"
            ) from None
        reason = exc.strerror or str(exc)
        raise CLIError(f"cannot listen on {host} port {port}: {reason}; check --host") from None
    return sock


@cli.command("serve", short_help="Serve the HTTP API and the dashboard.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True)
@click.option(
    "--app",
    "app_path",
    metavar="MODULE:APP",
    help="An application whose workflows (and actions) the server knows, besides the "
    "definitions registered through POST /workflows.",
)
@click.option(
    "--tokens",
    "tokens_file",
    metavar="FILE",
    help="A TOML file with admin = [...] and read = [...] API tokens "
    "(also: $DURABLE_API_TOKEN, $DURABLE_API_READ_TOKEN).",
)
@click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Also execute runs in this process (or leave them to `durable worker` processes).",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=1024 * 1024,
    show_default=True,
    metavar="BYTES",
    help="The largest request body accepted (413 beyond).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME[:PORT]",
    help="Another name requests may give in Host (and Origin), e.g. a reverse proxy's "
    "public name (repeatable). Others are refused, against DNS rebinding.",
)
@click.option(
    "--allow-code-definitions",
    is_flag=True,
    help="Let admin tokens register definitions that run code on the server (script and "
    "function steps, actions the app did not register). Never without an admin token.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
)
@db_option
@policy_options
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    app_path: str | None,
    tokens_file: str | None,
    worker: bool,
    max_body: int,
    allowed_hosts: tuple[str, ...],
    allow_code_definitions: bool,
    log_level: str,
    db: str | None,
    allow_module: tuple[str, ...],
    expose_env: tuple[str, ...],
) -> None:
    """Serve the HTTP API (POST /workflows, /executions/start, ...; schema at /openapi.json,
    docs at /docs) and the dashboard (at /). Stateless: run as many as you like on one
    database. Without an API token it only listens on loopback."""
    # The CLI's other commands need not pay for importing the server.
    from durable.api import (
        AllowedHosts,
        ApiOptions,
        HostSyntaxError,
        TokenConfigError,
        bind_problem,
        create_app,
        load_tokens,
    )
    from durable.api._server import run

    try:
        tokens = load_tokens(tokens_file)
    except TokenConfigError as exc:
        raise CLIError(str(exc)) from None
    problem = bind_problem(host, tokens)
    if problem is not None:
        raise CLIError(problem)
    try:
        hosts = AllowedHosts.for_bind(host, port, allowed_hosts)
    except HostSyntaxError as exc:
        raise CLIError(str(exc)) from None
    reserved = _reserve(host, port)
    if allow_code_definitions and not tokens.admin:
        click.echo(
            "warning: --allow-code-definitions has no effect: there is no admin token "
            "($DURABLE_API_TOKEN or --tokens FILE), and without one no definition that "
            "runs code is accepted over HTTP",
            err=True,
        )
    url, registry, worker_options = with_app(ctx, db, app_path)
    apply_policy(registry, allow_module, expose_env)
    options = ApiOptions(
        url=url,
        registry=registry,
        tokens=tokens,
        run_worker=worker,
        max_body=max_body,
        worker=worker_options,  # the app's App(lease_ttl=..., max_concurrent_runs=...)
        hosts=hosts,
        allow_code_definitions=allow_code_definitions,
    )
    api = create_app(options)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"durable serve: http://{shown}:{port}/ (API docs at /docs)", err=True)
    reserved.close()  # uvicorn binds it now (SO_REUSEADDR: free at once)
    run(api, host, port, log_level)
