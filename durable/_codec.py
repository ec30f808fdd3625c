"""Values in and out of the log: msgspec msgpack, never pickle.

A value is decoded with the type its function declares (the step's return annotation, the
workflow's input parameter), so a Struct or dataclass comes back as itself. The live path
round-trips every result through the same encoding, so a workflow sees exactly the same value
live as on replay (a tuple becomes a list in both, not only after a crash).
"""

from __future__ import annotations

import functools
import traceback
from typing import Any

import msgspec

from durable._errors import ErrorInfo, SerializationError

_encoder = msgspec.msgpack.Encoder()
_NONE = msgspec.msgpack.encode(None)


def encode_value(value: Any, what: str) -> bytes:
    """Encode a value for the log; `what` names it in the error (e.g. "result of step 'x'")."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"{what} cannot be stored: {exc}. Values in the log must be msgspec-serializable "
            "(None, bool, int, float, str, bytes, list, dict, tuple, datetime, UUID, Decimal, "
            "enum, dataclass, msgspec.Struct...)"
        ) from None


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
