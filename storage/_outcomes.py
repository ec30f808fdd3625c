"""Handing write outcomes back to their futures: shared by every backend's writer."""

from __future__ import annotations

import asyncio
from typing import Any

# (the write's future, whether it succeeded, its result or its exception)
Outcome = tuple["asyncio.Future[Any]", bool, Any]


def resolve(outcomes: list[Outcome]) -> None:
    """Settle each future with its outcome, skipping any whose waiter already gave up."""
    for fut, ok, value in outcomes:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
