"""The OpenAI-compatible route: `GET|POST /v2/{endpoint}/openai/v1/{path}` on queue endpoints,
so the official `openai` client works with base URL `.../v2/{endpoint}/openai/v1`.

Each request is a job like any other (the client routes' keys, scopes, rate and body limits;
visible in /status and the dashboard). Without `"stream": true` the request waits for the job,
bounded like /runsync (`?wait=ms`), and a job not done in time is cancelled (504). With it, the
answer is `text/event-stream` and each chunk the worker posts is written the moment the store
takes it (the job's wake-up signal, no polling); the answer ends when the job does, and a client
that goes away cancels its job (without `stream` too). Translation rules: `runq.api.openai_wire`.

Plain Starlette routes, not in /openapi.json: OpenAI's API is documented by OpenAI, and a
failed or timed-out job is relayed as a 5xx here by design (a gateway's answer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from runq.api.client import DEFAULT_SYNC_WAIT_MS, MAX_SYNC_WAIT_MS, RUNSYNC_LIMIT
from runq.api.client_models import parse_run_request
from runq.api.limits import check_input_depth
from runq.api.openai_wire import (
    Answer,
    error_body,
    job_answer,
    job_input,
    sse_bytes,
    sse_error,
    wants_stream,
    worker_error,
)
from runq.api.responses import json_response, parse_json, read_body
from runq.api.statuses import headers_of, status_of
from runq.core.job import JobStatus
from runq.core.reads import StreamRead
from runq.errors import BadRequest, RunqError
from runq.fleet.jobs import Jobs

log = logging.getLogger("runq.api")

STREAM_HOLD_S = 60.0  # one wait for the next chunk; waited again while the job runs
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _answer(answer: Answer, job_id: str | None = None) -> Response:
    response = json_response(answer.body, answer.status)
    if job_id is not None:
        # The openai client exposes it as `._request_id`: the job to look up in /status.
        response.headers["x-request-id"] = job_id
    return response


def _wait_s(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw is not None and not raw.isdecimal():
        raise BadRequest(f"query 'wait': expected milliseconds as an integer, got {raw!r}")
    wait_ms = int(raw) if raw is not None else DEFAULT_SYNC_WAIT_MS
    return min(max(wait_ms, 1000), MAX_SYNC_WAIT_MS) / 1000


async def _body(request: Request) -> tuple[Any, bytes]:
    """The JSON object of a POST (None for a GET, or a POST without a body) and its text."""
    if request.method == "GET":
        return None, b""
    raw = await read_body(request, RUNSYNC_LIMIT)
    body = parse_json(raw)
    if body is not None and not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    return body, raw


async def openai_route(request: Request) -> Response:
    endpoint: str = request.path_params["endpoint"]
    try:
        request.app.state.keys.require(request, endpoint=endpoint)
        jobs: Jobs = request.app.state.jobs
        spec = request.app.state.endpoints.spec(endpoint)
        if spec.type == "load_balancer":
            raise BadRequest(
                f"endpoint '{endpoint}' is a load-balancing endpoint: its workers serve their "
                f"own routes at /lb/{endpoint}/..."
            )
        body, raw = await _body(request)
        wrapped = {"input": job_input(request.path_params["path"], body)}
        check_input_depth(wrapped, raw)
        job_request = parse_run_request(wrapped, spec, sync=True, ttl_override_ms=None)
        wait = _wait_s(request)
        job = await jobs.submit(job_request)
    except RunqError as exc:
        status = status_of(exc)
        response = _answer(Answer(status, error_body(str(exc), status)))
        response.headers.update(headers_of(exc))
        return response
    if wants_stream(body):
        return JobEventStream(jobs, job.id)
    answer = await _unless_client_leaves(request, lambda: _finished(jobs, job.id, wait))
    if answer is None:  # nobody will read the result
        await jobs.cancel(job.id)
        return Response(status_code=499)  # nginx's "client closed request": never sent
    return _answer(answer, job.id)


async def _unless_client_leaves(
    request: Request, work: Callable[[], Awaitable[Answer]]
) -> Answer | None:
    """`work`'s answer, or None as soon as the client disconnects (its request is read, so
    the next message the server gives is the disconnect)."""
    answer: Answer | None = None

    async def run(scope: anyio.CancelScope) -> None:
        nonlocal answer
        answer = await work()
        scope.cancel()

    async def watch(scope: anyio.CancelScope) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(run, group.cancel_scope)
        group.start_soon(watch, group.cancel_scope)
    return answer


async def _finished(jobs: Jobs, job_id: str, wait: float) -> Answer:
    """The answer once the job ends; at `wait` it is cancelled and the answer is 504."""
    job = await jobs.wait_for(job_id, wait)
    if job is not None and not job.status.is_terminal and jobs.closing:
        message = f"runq is shutting down before job {job_id} finished"
        return Answer(503, error_body(message, 503))
    if job is not None and not job.status.is_terminal:
        # A job that ended meanwhile comes back unchanged: then its own answer stands.
        job = await jobs.cancel(job_id) or job
        if job.status == JobStatus.CANCELLED:
            message = f"job {job_id} did not finish within {wait:g} s and was cancelled"
            return Answer(504, error_body(message, 504))
    if job is None:
        return Answer(500, error_body(f"job {job_id} is gone (past its retention)", 500))
    return job_answer(job)


class JobEventStream(StreamingResponse):
    """A job's stream chunks as server-sent events, each sent as soon as it is stored.

    The status is chosen at the first chunk: a job that ends without streaming anything (an
    error object yielded first, a failure) answers like a request without `stream`, so the
    openai client raises the matching error. Starlette cancels `stream_response` when the
    client disconnects; the job is then cancelled too.
    """

    def __init__(self, jobs: Jobs, job_id: str) -> None:
        super().__init__(
            iter(()),
            headers={"x-request-id": job_id, **SSE_HEADERS},
            media_type="text/event-stream",
        )
        self._jobs = jobs
        self._job_id = job_id

    async def _next(self) -> StreamRead | None:
        """The chunks stored since the last read, once there are some or the job ended."""
        while True:
            read = await self._jobs.read_stream(self._job_id, STREAM_HOLD_S)
            if read is None or read.chunks or read.job.status.is_terminal:
                return read
            if self._jobs.closing:
                return None  # runq is shutting down: end the answer

    async def stream_response(self, send: Send) -> None:
        ended = False
        try:
            read = await self._next()
            if read is None:
                ended = True
                message = f"job {self._job_id} is gone (runq stopped or the job was purged)"
                await self._send_whole(send, Answer(503, error_body(message, 503)))
                return
            if not read.chunks and read.job.status.is_terminal:
                ended = True
                await self._send_whole(send, job_answer(read.job))
                return
            refused = worker_error(read.chunks[0]) if read.chunks else None
            if refused is not None:  # an error object instead of a stream (older vLLM)
                ended = True
                await self._send_whole(send, refused)
                return
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while read is not None:
                for chunk in read.chunks:
                    await send(
                        {"type": "http.response.body", "body": sse_bytes(chunk), "more_body": True}
                    )
                if read.job.status.is_terminal:
                    ended = True
                    answer = job_answer(read.job)
                    if answer.status != 200:  # the job failed after it began to stream
                        body = sse_error(answer)
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                    break
                read = await self._next()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if not ended:
                await self._cancel_job()

    async def _send_whole(self, send: Send, answer: Answer) -> None:
        response = _answer(answer, self._job_id)
        headers = response.raw_headers
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _cancel_job(self) -> None:
        # Shielded: this runs while Starlette cancels the stream on a disconnect.
        with anyio.CancelScope(shield=True):
            try:
                await self._jobs.cancel(self._job_id)
            except Exception:  # the store may be closing; the reaper bounds the job anyway
                log.exception("could not cancel job %s after its client left", self._job_id)


routes = [Route("/v2/{endpoint}/openai/v1/{path:path}", openai_route, methods=["GET", "POST"])]
