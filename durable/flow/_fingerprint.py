"""A builder workflow's fingerprint: what versions it, since its lambdas can't be stored.

It hashes the workflow's structure (step ids, kinds, options, in order) and the code of every
function in it: lambdas and tools by their compiled code (bytecode, constants and names, not
their line numbers, so moving code keeps the fingerprint), agents and named tools by name.
A run records the fingerprint it started on; a worker whose builder workflow hashes
differently runs it under the rules of Python workflows (README, "Changing a workflow"):
the change is recorded in the log (CodeChanged), recorded steps are not run again, and a
change that makes the run ask for different steps than it recorded stops it with a
NonDeterminismError naming the position; conditions, branch choices and loop decisions are
recorded, so changing a lambda does not move a run in flight onto another path.
"""

from __future__ import annotations

import hashlib
import types
from typing import Any

import msgspec


def fingerprint(description: Any) -> str:
    payload = _plain(description)
    return hashlib.sha256(msgspec.json.encode(payload, order="sorted")).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    name = getattr(value, "name", None)
    if callable(getattr(value, "run", None)) and isinstance(name, str):
        return {"agent": name}  # an agent: its name (its model requests are recorded)
    fn = getattr(value, "function", None) or getattr(value, "fn", None)
    if callable(fn) and isinstance(name, str):
        return {"tool": name, "code": code_digest(fn)}
    if callable(value):
        return {"code": code_digest(value)}
    return {"repr": type(value).__name__}


def code_digest(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        wrapped = getattr(fn, "__wrapped__", None) or type(fn).__call__
        code = getattr(wrapped, "__code__", None)
        if code is None:
            return getattr(fn, "__qualname__", type(fn).__name__)
    digest = hashlib.sha256()
    _feed(digest, code)
    return digest.hexdigest()[:16]


def _feed(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed(digest, const)
        else:
            digest.update(repr(const).encode())
