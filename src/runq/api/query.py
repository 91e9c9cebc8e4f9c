"""Integer query parameters (`?wait=`, `?ttl=`, `?limit=`...): a 400 naming the parameter for
anything that is not a whole number in range, never a 500 and never a silent default."""

from __future__ import annotations

from starlette.requests import Request

from runq.errors import BadRequest

# Far past any value a parameter accepts, and short enough that int() is cheap: Python refuses
# to convert strings of more than 4,300 digits (a ValueError that used to surface as a 500).
MAX_DIGITS = 18


def parse_count(raw: str, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    """`raw` as a whole number in minimum..maximum (no upper bound when `maximum` is None).

    Only ASCII digits count: `str.isdigit()` is true for '²', which `int()` refuses.

    Example: parse_count("250", "wait") is 250; parse_count("-1", "wait") raises BadRequest
    "query 'wait': expected a whole number at least 0, got '-1'".

    Raises:
        BadRequest: not digits, too long, or out of range; the message names `name`.
    """
    bounds = f"at least {minimum}" if maximum is None else f"in {minimum}..{maximum}"
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest(f"query '{name}': expected a whole number {bounds}, got {raw[:40]!r}")
    digits = len(raw.lstrip("0"))
    if digits > MAX_DIGITS:
        raise BadRequest(f"query '{name}': must be {bounds}, got a number of {digits} digits")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        raise BadRequest(f"query '{name}': must be {bounds}, got {value}")
    return value


def query_count(
    request: Request, name: str, default: int | None, minimum: int = 0, maximum: int | None = None
) -> int | None:
    """The query parameter `name` through `parse_count`; `default` when it is absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return parse_count(raw, name, minimum, maximum)
