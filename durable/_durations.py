"""One check for every duration a caller hands the engine (timeouts, sleeps, retry delays).

NaN compares false with everything, so `x < 0` lets it through, and then a timer never fires or
a deadline is always past; an infinity parks a run forever. Refused at the call, by name.
"""

from __future__ import annotations

import math


def check_duration(
    name: str, value: float, *, positive: bool = False, error: type[ValueError] = ValueError
) -> float:
    """`value` as a float if it is a finite number >= 0 (> 0 if `positive`), else `error` (a
    ValueError) naming the argument, the value and the rule."""
    rule = "a finite number of seconds " + ("> 0" if positive else ">= 0")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} must be {rule}, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise error(f"{name} must be {rule}, got {value!r}")
    return seconds
