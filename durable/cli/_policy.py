"""The operator's grants on `durable run`, `durable worker` and `durable serve`: which modules
`function:` steps may call into, which environment variables `{{ env.X }}` may read.

They add to what the application grants itself (App(allowed_function_modules=...,
expose_env=...)) and apply to the definitions the command loads: the FILE of `durable run`,
and definitions stored through the HTTP API. A DAG an app registers in code at import time is
checked against the app's own grants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from durable._errors import WorkflowDefinitionError
from durable.cli._app import CLIError
from durable.runtime._registry import Registry

F = TypeVar("F", bound=Callable[..., Any])

ALLOW_ENV = "DURABLE_ALLOW_MODULES"
EXPOSE_ENV = "DURABLE_EXPOSE_ENV"


def policy_options(fn: F) -> F:
    """--allow-module and --expose-env (repeatable; also from the environment, space-separated)."""
    fn = click.option(
        "--expose-env",
        "expose_env",
        multiple=True,
        metavar="NAME",
        envvar=EXPOSE_ENV,
        help="An environment variable {{ env.NAME }} expressions may read (repeatable; "
        f"NAME or PREFIX*; also ${EXPOSE_ENV}, space-separated). Default: none.",
    )(fn)
    decorated: F = click.option(
        "--allow-module",
        "allow_module",
        multiple=True,
        metavar="MODULE",
        envvar=ALLOW_ENV,
        help="A module (and its submodules) whose functions `function:` steps may call "
        f"(repeatable; also ${ALLOW_ENV}, space-separated). Default: only functions the "
        "app registered.",
    )(fn)
    return decorated


def apply_policy(
    registry: Registry, allow_module: tuple[str, ...], expose_env: tuple[str, ...]
) -> None:
    try:
        registry.policy.allow_modules(allow_module)
        registry.policy.expose_env(expose_env)
    except WorkflowDefinitionError as exc:
        message = str(exc).replace("allowed_function_modules:", "--allow-module:")
        raise CLIError(message.replace("expose_env:", "--expose-env:")) from None
