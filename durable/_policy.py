"""What DAG definitions may reach in this process: the operator's policy.

A definition is data; the code and the environment it reaches are the application's and the
operator's to grant:

* `function: "module:attr"` resolves only to a function the application registered under that
  name (`app.register_function`), or to a function defined in a module the operator allowed
  (`App(allowed_function_modules=[...])`, `--allow-module`). Allowing `myproject.tasks` allows
  `myproject.tasks` and its submodules (`myproject.tasks.billing`), not `myproject.tasks2`.
  Anything else is refused before any import.
* `{{ env.X }}` in expressions sees only the variables the operator exposed
  (`App(expose_env=[...])`, `--expose-env`): exact names, or `PREFIX*` patterns, which never
  match the engine's own variables.
* The engine's own variables (`DURABLE_*`, libpq's `PGPASSWORD`/`PGPASSFILE`, and any variable
  carrying the database password or an API token) never reach expressions, and are removed
  from what script steps inherit.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from durable._errors import WorkflowDefinitionError

_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENGINE_PREFIX = "DURABLE_"
_ENGINE_NAMES = frozenset({"PGPASSWORD", "PGPASSFILE"})
# Variables holding secrets themselves (the API's are comma-separated lists of tokens).
_TOKEN_NAMES = (
    "DURABLE_API_TOKEN",
    "DURABLE_API_READ_TOKEN",
    "DURABLE_SMTP_PASSWORD",
    "PGPASSWORD",
)
_MIN_SECRET = 4  # shorter "secrets" would match too much innocent text to be worth dropping

HOW_TO_ALLOW = (
    "register the function with app.register_function(fn, name=...) or allow its module "
    "with App(allowed_function_modules=[...]) or --allow-module MODULE"
)


class FunctionRefused(Exception):
    """A `function:` reference this process will not resolve; the message says why."""


def is_engine_variable(name: str) -> bool:
    return name.startswith(_ENGINE_PREFIX) or name in _ENGINE_NAMES


def url_password(url: str | None) -> str | None:
    """The password a database URL carries, if any."""
    if not url or "://" not in url:
        return None
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def engine_secrets(environ: Mapping[str, str]) -> set[str]:
    """Secret values of the engine's own variables: database passwords and API tokens."""
    found = {
        password
        for name, value in environ.items()
        if name.startswith(_ENGINE_PREFIX) and (password := url_password(value))
    }
    for name in _TOKEN_NAMES:
        found.update(t.strip() for t in environ.get(name, "").split(","))
    return {s for s in found if len(s) >= _MIN_SECRET}


def inherited_environment(
    environ: Mapping[str, str] | None = None, secrets: Iterable[str] = ()
) -> dict[str, str]:
    """The environment without the engine's variables or anything carrying their secrets
    (theirs, and `secrets`: e.g. the password of the URL the engine was given by --db)."""
    source = os.environ if environ is None else environ
    secrets = engine_secrets(source) | {s for s in secrets if len(s) >= _MIN_SECRET}
    return {
        k: v
        for k, v in source.items()
        if not is_engine_variable(k) and not any(s in v for s in secrets)
    }


class CodePolicy:
    """The registered functions, the allowed modules and the exposed variables of one app."""

    def __init__(self) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}
        self.allowed_modules: tuple[str, ...] = ()
        self.exposed_env: tuple[str, ...] = ()

    # -- configuration ---------------------------------------------------------------------

    def add_function(self, fn: Callable[..., Any], name: str | None = None) -> str:
        if not callable(fn):
            raise WorkflowDefinitionError(f"register_function needs a callable, got {fn!r}")
        if name is None:
            key = f"{getattr(fn, '__module__', None)}:{getattr(fn, '__qualname__', None)}"
            if not _TARGET.fullmatch(key):
                raise WorkflowDefinitionError(
                    f"{fn!r} has no 'module:function' name of its own ({key!r}): pass "
                    "name='namespace:function', the name `function:` steps will use"
                )
        else:
            key = name
        if not _TARGET.fullmatch(key):
            raise WorkflowDefinitionError(
                f"function name {key!r} must be 'module:function' (letters, digits, _ and "
                "dots on each side of one colon), the form `function:` uses"
            )
        existing = self.functions.get(key)
        if existing is not None and existing is not fn:
            raise WorkflowDefinitionError(
                f"two different functions are registered as function {key!r} "
                f"({_where(existing)} and {_where(fn)}); give one of them name=..."
            )
        self.functions[key] = fn
        return key

    def allow_modules(self, modules: Iterable[str]) -> None:
        added = _names(modules, "allowed_function_modules")
        for module in added:
            if not _MODULE.fullmatch(module):
                raise WorkflowDefinitionError(
                    f"allowed_function_modules: {module!r} is not a module name "
                    "(e.g. 'myproject.tasks')"
                )
        self.allowed_modules = _union(self.allowed_modules, added)

    def expose_env(self, names: Iterable[str]) -> None:
        added = _names(names, "expose_env")
        for name in added:
            if not _ENV_NAME.fullmatch(name.removesuffix("*")):
                raise WorkflowDefinitionError(
                    f"expose_env: {name!r} is not a variable name (or a PREFIX* pattern)"
                )
            if is_engine_variable(name.removesuffix("*")) and not name.endswith("*"):
                raise WorkflowDefinitionError(
                    f"expose_env: {name} is one of the engine's own variables (DURABLE_*, "
                    "PGPASSWORD, PGPASSFILE); expressions never see those"
                )
        self.exposed_env = _union(self.exposed_env, added)

    # -- functions -------------------------------------------------------------------------

    def module_allowed(self, module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in self.allowed_modules)

    def refusal(self, ref: str) -> str | None:
        """Why `ref` would be refused at registration, or None. Imports nothing."""
        if ref in self.functions:
            return None
        module = ref.partition(":")[0]
        if self.module_allowed(module):
            return None
        allowed = ", ".join(self.allowed_modules) or "none"
        return (
            f"function {ref!r} is not a registered function and module {module!r} is not "
            f"allowed (allowed modules: {allowed}); {HOW_TO_ALLOW}"
        )

    def resolve(self, ref: str) -> Callable[..., Any]:
        """The callable `ref` names; FunctionRefused if it is not granted or not found."""
        fn = self.functions.get(ref)
        if fn is not None:
            return fn
        why = self.refusal(ref)
        if why is not None:
            raise FunctionRefused(why)
        module_name, _, attr = ref.partition(":")
        if any(part.startswith("_") for part in attr.split(".")):
            raise FunctionRefused(
                f"function {ref!r}: private names (starting with _) cannot be called"
            )
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise FunctionRefused(
                f"cannot import module {module_name!r} for {ref!r}: {exc}"
            ) from None
        for part in attr.split("."):
            found = getattr(found, part, None)
            if found is None:
                raise FunctionRefused(f"module {module_name!r} has no attribute {attr!r}")
        if not callable(found):
            raise FunctionRefused(f"{ref!r} is not callable")
        # An allowed module must not be a door to what it imports (`tasks:os.system`).
        home = getattr(inspect.unwrap(found), "__module__", None)
        if not isinstance(home, str) or not self.module_allowed(home):
            raise FunctionRefused(
                f"function {ref!r} is defined in module {home!r}, which is not allowed "
                f"(allowed modules: {', '.join(self.allowed_modules)}); {HOW_TO_ALLOW}"
            )
        return found  # type: ignore[no-any-return]

    # -- environment -----------------------------------------------------------------------

    def env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The variables `{{ env.X }}` sees: only the exposed ones that are set."""
        source = os.environ if environ is None else environ
        exact = {n for n in self.exposed_env if not n.endswith("*")}
        prefixes = tuple(n[:-1] for n in self.exposed_env if n.endswith("*"))
        return {
            k: v
            for k, v in source.items()
            if k in exact or (k.startswith(prefixes) and not is_engine_variable(k))
        }


def _names(values: Iterable[str], option: str) -> tuple[str, ...]:
    if isinstance(values, str):  # a lone string would be read letter by letter
        values = [values]
    out = tuple(values)
    for value in out:
        if not isinstance(value, str):
            raise WorkflowDefinitionError(f"{option}: {value!r} is not a string")
    return out


def _union(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    return old + tuple(n for n in dict.fromkeys(new) if n not in old)


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    return repr(fn) if code is None else f"{code.co_filename}:{code.co_firstlineno}"
