"""What the CLI prints of text it did not write (ids, names, errors, results): never a raw
terminal control sequence.

Control characters (C0 but newline and tab, DEL, C1) and the invisible bidirectional
overrides are shown as Python escapes (ESC as \\x1b, U+202E as \\u202e): a run id or an error
message can no longer clear the screen, set the window title, hide text or reorder a line.
Standard library only: cheap to import for every command.
"""

from __future__ import annotations

import re

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\x0b": "\\x0b", "\x0c": "\\x0c"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """`text` with every control character shown as an escape; newlines and tabs kept."""
    return _CONTROLS.sub(_escaped, text)
