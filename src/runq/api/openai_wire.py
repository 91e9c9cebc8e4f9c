"""The OpenAI-compatible route's translation, as pure functions: request to job input, job to
HTTP answer, stream chunk to server-sent-event bytes.

The contract is RunPod's (its vLLM worker): `/openai/v1/<path>` becomes a job whose input is
`{"openai_route": "/v1/<path>", "openai_input": <body>}`; the handler yields one object (the
response body, or an error object with a `code`) or, with `"stream": true`, strings of raw
server-sent-event text that go to the client as they are.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

from runq.core.job import Job, JobStatus

MAX_PARSED_ERROR = 64 * 1024  # a failed job's error text longer than this is not parsed

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
}


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body."""

    status: int
    body: Any


def job_input(path: str, body: Any) -> dict[str, Any]:
    """The job input for `/openai/v1/{path}`; a request without a body (`GET /v1/models`)
    has no `openai_input`.

    Example: `job_input("chat/completions", {"model": "m"})` is
    `{"openai_route": "/v1/chat/completions", "openai_input": {"model": "m"}}`.
    """
    route = {"openai_route": "/v1/" + path.lstrip("/")}
    if body is None:
        return route
    return {**route, "openai_input": body}


def wants_stream(body: Any) -> bool:
    return isinstance(body, dict) and body.get("stream") is True


def error_body(message: str, status: int, kind: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which its client turns into `openai.<Kind>Error`."""
    kind = kind or _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def _status_of(code: Any) -> int:
    """An error object's `code` as an HTTP status: 400 unless it is one of 400..599."""
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    if isinstance(code, str) and code.isdecimal() and 400 <= int(code) <= 599:
        return int(code)
    return 400


def worker_error(value: Any) -> Answer | None:
    """The answer for a worker's error object, or None when `value` is not one.

    Two shapes are error objects: vLLM's `{"error": {"message", "type", "code"}}` and the
    older flat `{"object": "error", "message", "type", "code"}`. The body is always the first.

    Example: `{"object": "error", "message": "bad", "code": 422}` answers 422 with
    `{"error": {"object": "error", "message": "bad", "code": 422}}`.
    """
    if not isinstance(value, dict):
        return None
    inner = value.get("error")
    if isinstance(inner, dict) and "message" in inner:
        return Answer(_status_of(inner.get("code")), {"error": inner})
    if value.get("object") == "error" and "message" in value:
        return Answer(_status_of(value.get("code")), {"error": value})
    return None


def _parsed_error(text: str) -> Any:
    """A failed job's error text as a value: JSON (runq's worker encodes a non-string error),
    or a Python literal (the runpod SDK fails the job with `str()` of a yielded error object's
    `error` field). None when it is neither."""
    text = text.strip()
    if not text.startswith("{") or len(text) > MAX_PARSED_ERROR:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # literals only: no name is looked up, nothing runs
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _first_output(output: Any) -> Any:
    """The response body: the first item a generator handler yielded (`return_aggregate_stream`
    makes the output the list of them), or a plain handler's whole output."""
    if isinstance(output, list):
        return output[0] if output else None
    return output


def job_answer(job: Job) -> Answer:
    """The HTTP answer for an ended job.

    COMPLETED: the first output item, or its error object's code. FAILED: the error object the
    worker yielded (the runpod SDK fails the job with it), else 500 naming the job. Cancelled
    or timed out: 500 or 504 naming the job.
    """
    if job.status == JobStatus.COMPLETED:
        body = _first_output(job.output)
        return worker_error(body) or Answer(200, body)
    if job.status == JobStatus.FAILED:
        parsed = _parsed_error(job.error or "")
        if isinstance(parsed, dict):
            answer = worker_error(parsed) or worker_error({"error": parsed})
            if answer is not None:
                return answer
        return Answer(500, error_body(f"job {job.id} failed: {job.error}", 500))
    if job.status == JobStatus.TIMED_OUT:
        message = f"job {job.id} ran past its execution timeout"
        return Answer(504, error_body(message, 504))
    return Answer(500, error_body(f"job {job.id} ended {job.status.value}", 500))


def sse_bytes(chunk: Any) -> bytes:
    """A streamed chunk as it goes to the client: text as it is (the worker's own
    server-sent-event lines); anything else, one `data:` event per item, an error object in
    OpenAI's shape (`{"error": {...}}`, which the openai client raises)."""
    if isinstance(chunk, str):
        return chunk.encode()
    events = []
    for item in chunk if isinstance(chunk, list) else [chunk]:
        refused = worker_error(item)
        body = refused.body if refused is not None else item
        events.append(b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n")
    return b"".join(events)


def sse_error(answer: Answer) -> bytes:
    """A failure after the stream began, as an event the openai client raises as APIError."""
    return b"data: " + json.dumps(answer.body, separators=(",", ":")).encode() + b"\n\n"
