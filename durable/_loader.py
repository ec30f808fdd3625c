"""Loading a user's application object by import path ("module:attr"), for the CLI.

The engine never imports the SDK: whatever object the path names only has to satisfy
durable.AppLike (the SDK's App does). Every way this can go wrong is an AppLoadError with a
one-line message naming what was looked for, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

from durable._engine import AppLike
from durable._errors import DurableError
from durable._options import WorkerOptions
from durable.runtime._registry import Registry

EXAMPLE = "e.g. 'myproject.workflows:app'"


class AppLoadError(DurableError):
    """An application path could not be resolved to an application object."""


def load_app(path: str) -> AppLike:
    """Import `module` (the current directory comes first on sys.path, as with `python -m`)
    and return its attribute `attr` (dotted attributes allowed: "module:ns.app")."""
    module_name, attr_path = _split(path)
    module = _import(module_name)
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            detail = f" (no {part!r})" if "." in attr_path else ""
            raise AppLoadError(
                f"module {module_name!r} has no attribute {attr_path!r}{detail}; "
                f"check the name after the colon in {path!r}"
            )
        obj = getattr(obj, part)
    _check_app(path, obj)
    app: AppLike = obj
    return app


def _split(path: str) -> tuple[str, str]:
    module_name, colon, attr_path = path.strip().partition(":")
    if not colon:
        raise AppLoadError(f"bad application path {path!r}: expected 'module:attribute', {EXAMPLE}")
    if not module_name or not attr_path or ":" in attr_path:
        raise AppLoadError(
            f"bad application path {path!r}: expected 'module:attribute' with both parts "
            f"non-empty, {EXAMPLE}"
        )
    bad = [p for p in (*module_name.split("."), *attr_path.split(".")) if not p.isidentifier()]
    if bad:
        raise AppLoadError(
            f"bad application path {path!r}: {bad[0]!r} is not a Python identifier, {EXAMPLE}"
        )
    return module_name, attr_path


def _import(module_name: str) -> Any:
    # `durable worker app:app` run from a project directory should find app.py there, as
    # `python -m` would; console scripts don't put the current directory on sys.path.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise AppLoadError(
                f"cannot import module {module_name!r}: no module named {missing!r} "
                f"(looked in {cwd} and on sys.path; run from your project directory or set "
                "PYTHONPATH)"
            ) from None
        raise AppLoadError(f"importing module {module_name!r} failed: {_describe(exc)}") from None
    except Exception as exc:
        # The user's module raised while being imported: say where, in one line.
        raise AppLoadError(f"importing module {module_name!r} failed: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {exc.msg} ({exc.filename}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    # The innermost frame outside the import machinery is where the user's code failed.
    user = [f for f in frames if "importlib" not in f.filename]
    if user:
        return f"{text} ({user[-1].filename}:{user[-1].lineno})"
    return text


def _check_app(path: str, obj: object) -> None:
    problem = ""
    try:
        if not isinstance(obj, AppLike):
            problem = "it lacks registry, database_url or worker_options"
        elif not isinstance(obj.registry, Registry):
            problem = f"its registry is a {type(obj.registry).__name__}, not a durable.Registry"
        elif not isinstance(obj.worker_options, WorkerOptions):
            problem = (
                f"its worker_options is a {type(obj.worker_options).__name__}, "
                "not a durable.WorkerOptions"
            )
        elif not isinstance(obj.database_url, str):
            problem = f"its database_url is a {type(obj.database_url).__name__}, not a str"
    except Exception as exc:  # a property of the user's object raised
        problem = f"reading its attributes failed ({_describe(exc)})"
    if problem:
        raise AppLoadError(
            f"{path!r} is a {type(obj).__name__}, not a durable application: {problem} "
            "(create one with sdk.App() and point at it)"
        )
