"""Values that Python's json module reads but RFC 8259 has no room for.

`json.loads` takes `NaN`, `Infinity` and `-Infinity` (and reads `1e400` as infinity), and a
`"\\ud800"` escape that pairs with nothing; `json.dumps` writes the numbers back as bare `NaN`
(not JSON: browsers, Go and the RunPod SDKs' parsers refuse the whole body) and the lone
surrogate as a str that cannot be encoded to UTF-8 (a 500). runq refuses both where they come
in (a 400 naming the field; a worker's result that holds one fails its job) and, for anything
stored before it did, `sendable` makes a copy that can be sent.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Only a body that contains one of these can hold such a value, so the walk (a visit per
# container and string) is skipped for almost every body. A false alarm (the word "NaN" in a
# string, an escaped backslash before "ud800") costs just the walk.
_MAYBE_NON_FINITE = (b"NaN", b"Infinity")
# A float past 1.8e308 reads as infinity: written with a positive exponent of three digits, as
# JSON writers do. (So does one written out in 309 digits or more, which a scan of every body
# for long digit runs would cost more than it is worth: json_response sends it as null.)
_MAYBE_HUGE_FLOAT = re.compile(rb"[eE]\+?\d{3}")
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN is not a JSON number (RFC 8259); send null or a string instead"
        shown = "Infinity" if value > 0 else "-Infinity"
        return (
            f"{shown} (or a number past a 64-bit float's range, such as 1e400) is not a JSON "
            "number (RFC 8259); send null or a string instead"
        )
    if isinstance(value, str) and _has_surrogate(value):
        return "holds a lone UTF-16 surrogate escape (such as \\ud800), which is not a character"
    return None


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(the whole value)"


def find_unsendable(value: Any, prefix: tuple[str | int, ...] = ()) -> str | None:
    """The first value inside `value` that JSON cannot carry, as "field 'PATH': WHY"; None
    when there is none. Walked without recursion (a result may nest a thousand levels).

    Example: find_unsendable({"scores": [1.0, float("nan")]}, ("output",)) is
    "field 'output.scores[1]': NaN is not a JSON number (RFC 8259); ...".
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, prefix)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if _has_surrogate(key):
                    return f"field '{_dotted(path)}': a key {_problem(key)}"
                stack.append((child, (*path, key)))
        elif isinstance(node, list):
            stack.extend((child, (*path, index)) for index, child in enumerate(node))
        else:
            problem = _problem(node)
            if problem is not None:
                return f"field '{_dotted(path)}': {problem}"
    return None


def may_be_unsendable(raw: bytes) -> bool:
    """Whether the JSON text `raw` can parse to a value that `find_unsendable` reports."""
    return (
        any(token in raw for token in _MAYBE_NON_FINITE)
        or _MAYBE_SURROGATE.search(raw) is not None
        or _MAYBE_HUGE_FLOAT.search(raw) is not None
    )


def sendable(value: Any) -> Any:
    """A copy of `value` that RFC 8259 JSON can carry: NaN and the infinities become null,
    a lone surrogate becomes U+FFFD (the replacement character)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {sendable(key): sendable(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [sendable(child) for child in value]
    return value
