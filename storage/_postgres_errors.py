"""Driver errors of the PostgreSQL backend translated into storage's own."""

from __future__ import annotations

import asyncpg

from storage._errors import (
    DatabaseOpenError,
    DatabaseUnavailableError,
    StorageError,
)


def translate(exc: BaseException, where: str, during: str) -> BaseException:
    """storage's own error for an asyncpg (or socket) error; `where` is the masked URL."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return DatabaseOpenError(f"cannot open {where}: password authentication failed")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return DatabaseOpenError(f"cannot open {where}: the server refused the login ({exc})")
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return DatabaseOpenError(
            f"cannot open {where}: the database does not exist (create it, e.g. createdb)"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError) and during == "open":
        return DatabaseOpenError(f"cannot open {where}: insufficient privilege ({exc})")
    if isinstance(exc, OSError | TimeoutError):
        reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
        return DatabaseUnavailableError(f"cannot reach PostgreSQL at {where}: {reason}")
    transient = (
        asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.InsufficientResourcesError
    )
    if (
        during == "open"
        and isinstance(exc, ValueError | asyncpg.PostgresError)
        and not isinstance(exc, transient)
    ):
        # A bad libpq option, an unknown server setting in the URL, a schema we may not
        # create: the configuration is wrong, and retrying won't help.
        return DatabaseOpenError(f"cannot open {where}: {exc}")
    if type(exc).__module__.startswith("asyncpg"):
        # Lost connections surface in several guises (ConnectionDoesNotExistError,
        # InterfaceError, even InternalClientError when the server's goodbye arrives mid-
        # query); none of them may reach the engine as a driver exception.
        return DatabaseUnavailableError(f"PostgreSQL {during} on {where} failed: {exc}")
    return exc
