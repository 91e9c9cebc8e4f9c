"""Fast JSON in and out. Every reply is JSON with application/json (spec 1.1, 6.14)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from runq.api.json_values import find_unsendable, may_be_unsendable, sendable
from runq.errors import BadRequest, PayloadTooLarge


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def json_response(body: Any, status_code: int = 200) -> Response:
    """`body` as RFC 8259 JSON. runq refuses NaN, the infinities and lone surrogates where they
    come in; one stored before it did goes out as null (or U+FFFD), never as invalid JSON."""
    try:
        content = _dumps(body)
    except ValueError:  # a non-finite float, or a lone surrogate (UnicodeEncodeError)
        content = _dumps(sendable(body))
    return Response(content=content, status_code=status_code, media_type="application/json")


def error_response(message: str, status_code: int) -> Response:
    return json_response({"error": message}, status_code)


NO_CONTENT = Response(status_code=204)


async def read_body(request: Request, limit: int, what: str = "body") -> bytes:
    """The raw body, refused (413) once it passes `limit` bytes: by its Content-Length before
    reading anything, else while it streams in (a chunked body is never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdecimal() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} is {int(declared)} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class UnsendableJson(BadRequest):
    """JSON text that parses, but to a value RFC 8259 cannot carry (runq.api.json_values)."""

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"the request {what} is not valid JSON (RFC 8259): {problem}")
        self.problem = problem


def parse_json(raw: bytes, what: str = "body", strict: bool = True) -> Any:
    """Parse a body as JSON whatever the Content-Type says (curl -d sends a form type, the
    runpod worker SDK sends x-www-form-urlencoded over JSON text: spec 6.4). Empty: None.

    Raises:
        BadRequest: not JSON, nested past Python's parser, or a number of over 4,300 digits.
        UnsendableJson: (`strict` only) NaN, an infinity or a lone surrogate, by field.
    """
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON in the request {what}: {exc}") from None
    except RecursionError:
        # Python's parser gives up near 1,000 levels of nesting, far past any real payload.
        raise BadRequest(f"the request {what} is JSON nested too deeply to parse") from None
    except ValueError:
        # int() refuses strings of over 4,300 digits (CVE-2020-10735), and so does json.
        raise BadRequest(f"the request {what} holds a number of more than 4300 digits") from None
    if strict and may_be_unsendable(raw):
        problem = find_unsendable(value)
        if problem is not None:
            raise UnsendableJson(what, problem)
    return value


async def read_json(request: Request, limit: int, what: str = "body") -> Any:
    """`read_body` then `parse_json`."""
    return parse_json(await read_body(request, limit, what), what)
