"""Sizes in bytes, as users write them: 1000000, "500MB", "50GB", "1.5TiB"."""

from __future__ import annotations

import math
import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: object) -> int:
    """Bytes from an int or a string with a decimal (KB, MB, GB, TB) or binary (KiB .. TiB) unit.

    >>> parse_size("50GB"), parse_size("1.5KiB"), parse_size(1000)
    (50000000000, 1536, 1000)

    Raises:
        ValueError: not a size, or negative; the message quotes the value.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f"expected a size such as 50GB, 512MiB or a number of bytes: {value!r}")
    number = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(number):
        raise ValueError(f"size too large: {value!r}")
    return int(number)
