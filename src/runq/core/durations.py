"""Durations as users write them: a number of seconds, or a string with a unit."""

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Return seconds for `value`.

    >>> parse_duration("5s"), parse_duration("7m"), parse_duration(90), parse_duration("250ms")
    (5.0, 420.0, 90.0, 0.25)

    Raises:
        ValueError: with a message that quotes the value.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30, '30s', '5m', '2h', got {value!r}")
    if isinstance(value, int | float):
        return _finite(value, value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            return _finite(float(number) * _UNITS[unit or "s"], value)
    raise ValueError(f"expected a duration like 30, '30s', '5m', '2h', got {value!r}")


def _finite(seconds: float, value: object) -> float:
    """A string of 400 digits is a float of inf, and an int that large cannot be one at all."""
    try:
        seconds = float(seconds)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        shown = (
            value if not isinstance(value, str | int) or len(str(value)) < 40 else "a huge value"
        )
        raise ValueError(f"a duration must be a finite number >= 0, got {shown!r}")
    return seconds
