"""The `Idempotency-Key` header of /run and /runsync: read, check and fingerprint it.

A key names one submission of one API key on one endpoint (`runq.core.idempotency`). Its
fingerprint digests what the submission asked for (the route, the JSON body with its keys
sorted, and the `ttl` query), not the bytes: a retry that re-serialises the same body is the
same request, while the same key on another body or route is refused (422).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from typing import Any

from starlette.requests import Request

from runq.core.idempotency import HEADER, MAX_KEY_LENGTH, IdempotencyKey
from runq.errors import BadRequest

# The header in the OpenAPI document of /run and /runsync.
IDEMPOTENCY_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "Names this submission: a retry under the same key (same API key and "
    "endpoint, within 24 h) gets the job the first made, never a second one",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}
# Its one 422 (in place of FastAPI's validation error, which runq never answers).
MISMATCH_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {
        "description": f"The {HEADER} was used for a different request in the last 24 h",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                }
            }
        },
    }
}
REPLAYED_HEADER = "Idempotent-Replayed"  # "true" on the answer to a retry (Stripe's name)

# TEST ONLY: `runq serve` started with RUNQ_TEST_CRASH_AFTER_ENQUEUE=1 kills itself (SIGKILL,
# as `kill -9` would) right after a /run or /runsync is committed and before it is answered,
# the crash that idempotency keys exist for; tests/api/test_idempotency_crash.py uses it.
# Read once, when the server starts.
CRASH_AFTER_ENQUEUE = os.environ.get("RUNQ_TEST_CRASH_AFTER_ENQUEUE") == "1"


def read_key(request: Request, owner: str, endpoint: str, body: Any) -> IdempotencyKey | None:
    """The request's idempotency key, or None without the header.

    Raises:
        BadRequest: the header is empty, given twice, over 255 characters, or not printable
            ASCII.
    """
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"header '{HEADER}': give it once, not {len(values)} times")
    text = values[0]
    if not text:
        raise BadRequest(f"header '{HEADER}': empty; send 1 to {MAX_KEY_LENGTH} characters")
    if len(text) > MAX_KEY_LENGTH:
        raise BadRequest(
            f"header '{HEADER}': {len(text)} characters; the limit is {MAX_KEY_LENGTH}"
        )
    if not all(" " <= char <= "~" for char in text):
        raise BadRequest(
            f"header '{HEADER}': only printable ASCII characters are allowed (a uuid4 is best)"
        )
    route = request.url.path.rsplit("/", 1)[-1]
    return IdempotencyKey(owner, endpoint, text, fingerprint(route, body, request))


def fingerprint(route: str, body: Any, request: Request) -> str:
    """sha256 of what the submission asks for: route, body (keys sorted) and `ttl` query."""
    canonical = json.dumps(
        [route, body, request.query_params.get("ttl")],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def crash_if_testing() -> None:
    """See CRASH_AFTER_ENQUEUE: the job is durable, the client never hears of it."""
    if CRASH_AFTER_ENQUEUE:
        os.kill(os.getpid(), signal.SIGKILL)
