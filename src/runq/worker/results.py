"""Pure mapping from what a handler did to the job-done and job-stream bodies.

The shapes match runpod 1.12.0 (`rp_job.run_job` and `handle_job`) key for key, because
the control plane and existing clients read them that way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Body = dict[str, Any]


@dataclass(frozen=True)
class ErrorMeta:
    """Where an error happened, for the JSON error report."""

    hostname: str
    worker_id: str
    version: str


def result_body(value: Any) -> Body:
    """Maps a handler's return value to the job-done body.

    Examples:
        {"a": 1, "error": "x"} -> {"output": {"a": 1}, "error": "x"}
        {"refresh_worker": True} -> {"stopPod": True}   (output became {} and is dropped)
        None -> {"output": None};  "hi" -> {"output": "hi"}
    """
    if not isinstance(value, dict):
        return {"output": value}
    output = dict(value)  # copy: runpod pops from the handler's own dict, we don't mutate it
    error = output.pop("error", None)
    refresh = output.pop("refresh_worker", None)
    body: Body = {"output": output}
    if error:
        body["error"] = error
    if refresh:
        body["stopPod"] = True
    if output == {}:
        del body["output"]
    return body


def error_body(exc: BaseException, traceback_text: str, meta: ErrorMeta) -> Body:
    """The body for a handler that raised: `error` is itself a JSON string."""
    info = {
        "error_type": str(type(exc)),
        "error_message": str(exc),
        "error_traceback": traceback_text,
        "hostname": meta.hostname,
        "worker_id": meta.worker_id,
        "runpod_version": meta.version,
    }
    return {"error": json.dumps(info)}


def stream_error_body(exc: BaseException, traceback_text: str) -> Body:
    """The body for a generator handler that raised mid-stream."""
    return {"error": f"handler: {exc} \ntraceback: {traceback_text}"}


def chunk_error(chunk: Any) -> Body | None:
    """The final body when a yielded chunk is an error dict, else None (stream it)."""
    if isinstance(chunk, dict) and chunk.get("error"):
        return {"error": str(chunk["error"])}
    return None


def stream_final_body(chunks: list[Any] | None) -> Body:
    """The job-done body after a generator finished: the chunks when aggregating, else []."""
    return {"output": [] if chunks is None else chunks}


def progress_body(progress: Any) -> Body:
    """The job-done body of a progress update."""
    return {"status": "IN_PROGRESS", "output": progress}


def with_stop_pod(body: Body) -> Body:
    """Adds `stopPod: true` (config `refresh_worker`)."""
    return {**body, "stopPod": True}


def encode(body: Body) -> bytes:
    """JSON text as runpod sends it (non-ASCII kept as UTF-8).

    Raises:
        TypeError, ValueError: the body holds something JSON cannot encode.
    """
    text = json.dumps(body, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8; ASCII escapes carry them losslessly.
        return json.dumps(body).encode("ascii")


def unencodable_body(exc: Exception) -> Body:
    """Replaces a result that JSON cannot encode (runpod drops it and the job hangs)."""
    return {"error": f"handler result is not JSON serializable: {exc}"}
