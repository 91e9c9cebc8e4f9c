"""Limits on what a client may submit, each refused with a 4xx that names it."""

from __future__ import annotations

from typing import Any

from runq.errors import BadRequest

MAX_INPUT_DEPTH = 64  # dicts and lists inside `input`; deeper payloads are refused (400)

RESULT_LIMIT = 20 * 1024 * 1024  # spec 2.7: RunPod rejects results over about 20 MB


def nesting_depth(value: Any, stop_after: int = MAX_INPUT_DEPTH) -> int:
    """How deeply dicts and lists nest in `value` (a scalar is 0, `[]` and `{"a": 1}` are 1,
    `[[1]]` is 2), counted without recursion; the walk stops once it passes `stop_after`.

    Example: `{"a": [{"b": 1}]}` is 3 deep: the dict, the list, the inner dict.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def check_input_depth(body: Any, raw: bytes, limit: int = MAX_INPUT_DEPTH) -> None:
    """Refuse a run body whose `input` nests deeper than `limit`.

    `raw` is the body's text: with no more brackets than the limit, nothing can nest deeper,
    and the walk (which costs a visit per container) is skipped. That is almost every body.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit or not isinstance(body, dict):
        return
    depth = nesting_depth(body.get("input"), limit)
    if depth > limit:
        raise BadRequest(
            f"field 'input': nested deeper than the limit of {limit} levels (dicts and lists)"
        )
