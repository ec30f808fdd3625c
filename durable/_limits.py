"""How much of a value the engine keeps: the size and depth limits on what it stores.

One place for every limit on stored errors and outputs, and the one way text is cut: the first
and last parts are kept with a marker between them saying how much was cut, so a 20 MiB
exception message costs 64 KiB in the log, not 20 MiB once per copy per attempt.

Standard library only: the JavaScript sandbox (durable/js/_child.py), which must not import the
durable package, loads this file by path so that it cuts exactly as the engine does.
"""

from __future__ import annotations

#: Each stored error field: an error's message, its traceback, a JavaScript stack, and each
#: entry of its details (a script's stdout and stderr, an HTTP body...).
MAX_ERROR_FIELD_BYTES = 64 * 1024
#: An error's details as a whole (entries past it are dropped, and the drop is said).
MAX_ERROR_DETAILS_BYTES = 256 * 1024
#: What a script step keeps of each of its stdout and stderr in its result (the rest is read
#: and counted, never held).
MAX_SCRIPT_OUTPUT_BYTES = 1024 * 1024
#: How deeply lists, dicts and objects may nest in a stored value (input, step arguments and
#: results, signal payloads). msgspec recurses once per level within Python's recursion limit,
#: so a deeper value could be written by a shallow caller and then fail to decode in a worker.
#: 100 is also what the HTTP API accepts in a body, what a definition file may nest, and what
#: jsrun converts into a JavaScript step: one limit wherever a value goes.
MAX_NESTING_DEPTH = 100
#: Each value written to a stream (ctx.write_stream, durable.write_stream), encoded: streams
#: carry many small values (tokens, progress), read live; a big result belongs in a step's.
MAX_STREAM_VALUE_BYTES = 64 * 1024


def marker(dropped: int, total: int) -> str:
    return f" … [cut {dropped:,} of {total:,} bytes] … "


def cut(text: str, limit: int = MAX_ERROR_FIELD_BYTES) -> str:
    """`text` if its UTF-8 encoding fits in `limit` bytes, else its beginning and its end with
    a marker between them (" … [cut N of M bytes] … "), all within `limit` bytes.

    Lone surrogates (a file name decoded with surrogateescape, a JavaScript string) become
    "?": stored text must be valid UTF-8.
    """
    if text.isascii():
        if len(text) <= limit:
            return text
        data = text.encode()
    else:
        try:
            data = text.encode()
        except UnicodeEncodeError:
            data = text.encode("utf-8", "replace")
            text = data.decode()
        if len(data) <= limit:
            return text
    total = len(data)
    room = max(limit - len(marker(total, total).encode()), 0)
    # Cut on byte offsets, then drop the partial character at each edge.
    head = data[: (room + 1) // 2].decode("utf-8", "ignore")
    tail_bytes = room // 2
    tail = data[total - tail_bytes :].decode("utf-8", "ignore") if tail_bytes else ""
    dropped = total - len(head.encode()) - len(tail.encode())
    return head + marker(dropped, total) + tail
