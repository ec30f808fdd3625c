"""Values in and out of the log: msgspec msgpack, never pickle.

A value is decoded with the type its function declares (the step's return annotation, the
workflow's input parameter), so a Struct or dataclass comes back as itself. The live path
round-trips every result through the same encoding, so a workflow sees exactly the same value
live as on replay (a tuple becomes a list in both, not only after a crash).
"""

from __future__ import annotations

import dataclasses
import functools
import traceback
from collections.abc import Iterable
from typing import Any

import msgspec

from durable._errors import ErrorInfo, SerializationError
from durable._limits import MAX_NESTING_DEPTH

_encoder = msgspec.msgpack.Encoder()
_NONE = msgspec.msgpack.encode(None)


def encode_value(value: Any, what: str, *, wrapping: int = 0) -> bytes:
    """Encode a value for the log; `what` names it in the error (e.g. "result of step 'x'").

    `wrapping`: levels of nesting the caller added around the user's value (a step's
    arguments travel as [args, kwargs]), so the limit counts the user's value alone."""
    try:
        data = _encoder.encode(value)
    except RecursionError:
        raise _too_deep(what) from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"{what} cannot be stored: {exc}. Values in the log must be msgspec-serializable "
            "(None, bool, int, float, str, bytes, list, dict, tuple, datetime, UUID, Decimal, "
            "enum, dataclass, msgspec.Struct...)"
        ) from None
    # Each level takes at least a byte: only a longer encoding can be too deep. msgspec's own
    # bound is Python's recursion limit minus the caller's depth, so without ours a value
    # written from a shallow stack could fail to decode in a worker's deeper one.
    limit = MAX_NESTING_DEPTH + wrapping
    if len(data) > limit and _deeper_than(value, limit):
        raise _too_deep(what)
    return data


def _too_deep(what: str) -> SerializationError:
    return SerializationError(
        f"{what} cannot be stored: it is nested more than {MAX_NESTING_DEPTH} levels deep (or "
        f"contains itself); stored values may nest lists, dicts and objects at most "
        f"{MAX_NESTING_DEPTH} levels deep: flatten it, or store it as a string or bytes"
    )


_LEAVES = frozenset({str, int, float, bool, bytes, type(None)})


def _children(value: Any) -> Iterable[Any] | None:
    """The values inside a container msgspec encodes (None for a leaf); dict keys are not
    looked into (a deep key is still caught as a RecursionError when encoding)."""
    if isinstance(value, list | tuple | set | frozenset):
        return value
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, msgspec.Struct):
        return (getattr(value, name, None) for name in value.__struct_fields__)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (getattr(value, f.name, None) for f in dataclasses.fields(value))
    fields = getattr(type(value), "__attrs_attrs__", None)
    if fields is not None:
        return (getattr(value, a.name, None) for a in fields)
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels deep in `value`. Iterative (a check
    for deep values must not recurse), with the common types tested first: it runs on every
    stored value longer than the limit."""
    leaves = _LEAVES
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        children: Iterable[Any] | None
        if kind is list or kind is tuple:
            children = item
        elif kind is dict:
            children = item.values()
        else:
            children = _children(item)
            if children is None:
                continue
        if depth >= limit:
            return True
        below = depth + 1
        for child in children:
            if type(child) not in leaves:
                push((child, below))
    return False


@functools.lru_cache(maxsize=1024)
def _decoder(tp: Any) -> msgspec.msgpack.Decoder[Any]:
    return msgspec.msgpack.Decoder(tp)


def decode_value(data: bytes | msgspec.Raw, tp: Any = Any) -> Any:
    try:
        dec = _decoder(tp)
    except TypeError:  # an annotation msgspec can't decode into (or unhashable): stay untyped
        dec = _decoder(Any)
    try:
        return dec.decode(data)
    except msgspec.ValidationError:
        # The recorded value no longer fits the annotation (the code changed its type): give
        # the plain value rather than fail a run whose history is intact.
        return _decoder(Any).decode(data)


def checked(
    data: bytes, tp: Any, what: str, error: type[SerializationError] = SerializationError
) -> Any:
    """`data` decoded as `tp`, strictly: a value that does not fit raises `error`, naming
    `what`, the type and msgspec's reason (with the path, e.g. `$.lines[0]`). A type msgspec
    can't decode into is not checked."""
    try:
        dec = _decoder(tp)
    except TypeError:
        return _decoder(Any).decode(data)
    try:
        return dec.decode(data)
    except msgspec.ValidationError as exc:
        raise error(f"{what} does not match its annotation {type_name(tp)}: {exc}") from None


def type_name(tp: Any) -> str:
    """`dict[str, int]`, `Order`, `int | None`: an annotation as its source spells it."""
    if isinstance(tp, type) and not getattr(tp, "__args__", None):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def raw(data: bytes) -> msgspec.Raw:
    return msgspec.Raw(data)


NONE_RAW = msgspec.Raw(_NONE)


def error_info(exc: BaseException) -> ErrorInfo:
    tp = type(exc)
    module = tp.__module__
    if module.startswith(("durable.", "storage.")):
        # The public package users import it by: durable.dag._kinds -> durable.dag.
        parts = module.split(".")
        public = [p for p in parts[: next((i for i, p in enumerate(parts) if p[:1] == "_"), None)]]
        module = ".".join(public)
    name = tp.__qualname__ if module in ("builtins", "__main__") else f"{module}.{tp.__qualname__}"
    tb = "".join(traceback.format_exception(exc))
    details = getattr(exc, "details", None)
    if not isinstance(details, dict):
        details = None
    return ErrorInfo(type=name, message=str(exc), traceback=tb, details=details)
