"""The one rule for ids and names users give: run ids, workflow names and versions, step and
action names, signal names.

An id is 1 to 255 printable characters (Python's str.isprintable): letters, digits,
punctuation and symbols of any script and the ASCII space, but no control character (NUL,
newline, tab, ESC, DEL...), no invisible formatting character (bidirectional overrides,
zero-width joiners) and no other kind of space: the engine shows ids in terminals, logs and
URLs, and databases differ on what else they store (PostgreSQL refuses NUL).
"""

from __future__ import annotations

from durable._errors import InvalidIdError

MAX_ID_LENGTH = 255
ID_RULE = (
    f"Ids and names are 1 to {MAX_ID_LENGTH} printable characters: no control characters "
    "(NUL, newline, tab, ESC...) and no invisible formatting characters"
)


def check_id(kind: str, value: object) -> str:
    """`value` if it follows the rule, else InvalidIdError saying what is wrong with it.
    `kind` names it for the message: "run id", "workflow name", "signal name"..."""
    if not isinstance(value, str):
        raise InvalidIdError(
            kind, value, f"is of type {type(value).__name__}, not a string", ID_RULE
        )
    if not value:
        raise InvalidIdError(kind, value, "is empty", ID_RULE)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(kind, value, f"is {len(value):,} characters long", ID_RULE)
    if not value.isprintable():
        at, char = next((i, c) for i, c in enumerate(value) if not c.isprintable())
        raise InvalidIdError(kind, value, f"contains {_name(char)} at position {at + 1}", ID_RULE)
    return value


def check_lookup(kind: str, value: object) -> str:
    """An id given to find something that may exist: the part of the rule no stored id can
    break (a string of 1 to 255 characters, no NUL, valid Unicode). Ids an older version
    accepted (a control character in a run id) stay reachable, and a lookup never reaches the
    database with text it cannot take (PostgreSQL refuses NUL)."""
    if not isinstance(value, str):
        raise InvalidIdError(
            kind, value, f"is of type {type(value).__name__}, not a string", ID_RULE
        )
    if not value or len(value) > MAX_ID_LENGTH or "\x00" in value:
        check_id(kind, value)  # says which
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise InvalidIdError(kind, value, f"is not valid Unicode ({exc.reason})", ID_RULE) from None
    return value


def _not_a_string(value: object) -> str:
    return f"is of type {type(value).__name__}, not a string"


def _name(char: str) -> str:
    code = ord(char)
    names = {0: "NUL", 9: "a tab", 10: "a newline", 13: "a carriage return", 27: "ESC"}
    label = names.get(code)
    return f"{label} (U+{code:04X})" if label else f"the character U+{code:04X}"
