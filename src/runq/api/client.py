"""The RunPod-compatible client API under /v2/{endpoint} (spec section 1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from runq.api import services
from runq.api.client_models import MAX_POLICY_MS, RunRequest, inline_schema, parse_run_request
from runq.api.idempotency import (
    IDEMPOTENCY_PARAMETER,
    MISMATCH_RESPONSE,
    REPLAYED_HEADER,
    crash_if_testing,
    read_key,
)
from runq.api.limits import check_input_depth
from runq.api.query import query_count
from runq.api.responses import json_response, parse_json, read_body
from runq.core.idempotency import HEADER, Submission
from runq.core.job import Job, JobStatus
from runq.core.keys import ApiKey
from runq.errors import NotFound
from runq.fleet.jobs import Jobs

router = APIRouter(prefix="/v2/{endpoint}", tags=["client"])

RUN_LIMIT = 10 * 1024 * 1024  # spec 1.4.1
RUNSYNC_LIMIT = 20 * 1024 * 1024  # spec 1.4.2
DEFAULT_SYNC_WAIT_MS = 90_000
MAX_SYNC_WAIT_MS = 300_000
STREAM_HOLD_S = 2.0  # without ?wait, /stream answers well inside the SDK's 10 s

_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": inline_schema(RunRequest)}},
    },
    "parameters": [IDEMPOTENCY_PARAMETER],
}


def _jobs(request: Request, endpoint: str) -> Jobs:
    """The job service, once the caller's key may invoke `endpoint` (401, 403, 429)."""
    return _caller(request, endpoint)[0]


def _caller(request: Request, endpoint: str) -> tuple[Jobs, ApiKey]:
    """`_jobs`, and the caller's key (the owner of its idempotency keys)."""
    key: ApiKey = request.app.state.keys.require(request, endpoint=endpoint)
    return services.jobs(request), key


async def _run_body(request: Request, limit: int) -> Any:
    raw = await read_body(request, limit)
    body = parse_json(raw)
    check_input_depth(body, raw)
    return body


def _wait_s(request: Request, default_ms: int) -> float:
    """`?wait=` in seconds: RunPod accepts 1000..300000 ms, and a whole number outside that
    is brought into it (spec 1.4.2); a negative or non-numeric one is a 400."""
    wait_ms = query_count(request, "wait", default_ms) or 0
    return min(max(wait_ms, 1000), MAX_SYNC_WAIT_MS) / 1000


def _ttl_ms(request: Request) -> int | None:
    return query_count(request, "ttl", None, minimum=10_000, maximum=MAX_POLICY_MS)


async def _job(request: Request, endpoint: str, job_id: str) -> Job:
    job = await services.jobs(request).get(job_id)
    if job is None or job.endpoint != endpoint:
        services.endpoints(request).spec(endpoint)  # an endpoint not deployed says so first
        raise NotFound(f"job '{job_id}' not found on endpoint '{endpoint}' (or past retention)")
    return job  # an undeployed endpoint's jobs stay readable for their retention


@router.post("/run", openapi_extra=_BODY, responses=MISMATCH_RESPONSE, summary="Submit a job")
async def run(endpoint: str, request: Request) -> Response:
    jobs, caller = _caller(request, endpoint)
    spec = services.endpoints(request).spec(endpoint)
    ttl_ms = _ttl_ms(request)
    body = await _run_body(request, RUN_LIMIT)
    job_request = parse_run_request(body, spec, sync=False, ttl_override_ms=ttl_ms)
    key = read_key(request, caller.id, endpoint, body)
    if key is None:
        job = await jobs.submit(job_request)
        crash_if_testing()
        return json_response({"id": job.id, "status": job.status.value})
    submission = await jobs.submit_once(job_request, key)
    crash_if_testing()
    return _replayed(json_response(_short_wire(submission)), submission)


@router.post(
    "/runsync",
    openapi_extra=_BODY,
    responses=MISMATCH_RESPONSE,
    summary="Submit a job and wait for its result",
)
async def runsync(endpoint: str, request: Request) -> Response:
    jobs, caller = _caller(request, endpoint)
    spec = services.endpoints(request).spec(endpoint)
    ttl_ms, wait = _ttl_ms(request), _wait_s(request, DEFAULT_SYNC_WAIT_MS)
    body = await _run_body(request, RUNSYNC_LIMIT)
    job_request = parse_run_request(body, spec, sync=True, ttl_override_ms=ttl_ms)
    key = read_key(request, caller.id, endpoint, body)
    submission = None
    if key is None:
        submitted = await jobs.submit(job_request)
    else:
        submission = await jobs.submit_once(job_request, key)
        if submission.job is None:  # a replay past the job's retention: no output to give
            return _replayed(json_response(_short_wire(submission)), submission)
        submitted = submission.job
    crash_if_testing()
    job = await jobs.wait_for(submitted.id, wait) or submitted
    if job.status.is_terminal:
        return _replayed(json_response(job.to_wire()), submission)
    # Not done in time: the client polls /status now, so keep the result as long as /run's
    # (spec 1.4.2), and the reply must carry the id.
    await jobs.keep_async(job.id)
    return _replayed(json_response(job.to_wire(now=services.clock(request)())), submission)


def _short_wire(submission: Submission) -> dict[str, Any]:
    """/run's answer, `{id, status}`, for a submission under an Idempotency-Key."""
    status = submission.status
    if status is None:  # cannot happen while ended jobs' times outlive keys; never a 500
        raise NotFound(f"job '{submission.job_id}' of this {HEADER} is past its retention")
    return {"id": submission.job_id, "status": status.value}


def _replayed(response: Response, submission: Submission | None) -> Response:
    """Mark the answer to a retry, as Stripe does: the job was made by an earlier request."""
    if submission is not None and submission.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


@router.api_route("/status/{job_id}", methods=["GET", "POST"], summary="A job's status")
async def status(endpoint: str, job_id: str, request: Request) -> Response:
    _jobs(request, endpoint)
    job = await _job(request, endpoint, job_id)
    wire = job.to_wire(now=services.clock(request)())
    if job.status == JobStatus.IN_QUEUE:
        estimate = services.fleet(request).start_estimate_s(endpoint)
        if estimate is not None:
            # runq's extra field (RunPod clients ignore it): while the endpoint scales from
            # zero, when this job should start, from the measured cold starts.
            wire["estimatedStartMs"] = round(estimate * 1000)
    return json_response(wire)


@router.api_route("/status-sync/{job_id}", methods=["GET", "POST"], summary="Wait for a job")
async def status_sync(endpoint: str, job_id: str, request: Request) -> Response:
    jobs = _jobs(request, endpoint)
    wait = _wait_s(request, DEFAULT_SYNC_WAIT_MS)
    job = await _job(request, endpoint, job_id)
    if job.sync:
        await jobs.keep_async(job_id)
    waited = await jobs.wait_for(job_id, wait)
    return json_response((waited or job).to_wire(now=services.clock(request)()))


@router.api_route("/stream/{job_id}", methods=["GET", "POST"], summary="Drain streamed output")
async def stream(endpoint: str, job_id: str, request: Request) -> Response:
    jobs = _jobs(request, endpoint)
    hold_ms = query_count(request, "wait", None)
    hold = STREAM_HOLD_S if hold_ms is None else min(hold_ms, MAX_SYNC_WAIT_MS) / 1000
    await _job(request, endpoint, job_id)
    read = await jobs.read_stream(job_id, hold)
    if read is None:
        raise NotFound(f"job '{job_id}' not found (or past retention)")
    body: dict[str, Any] = {
        "id": job_id,
        "status": read.job.status.value,
        "stream": [{"output": chunk} for chunk in read.chunks],
    }
    if read.job.error is not None:
        body["error"] = read.job.error
    return json_response(body)


@router.post("/cancel/{job_id}", summary="Cancel a queued or running job")
async def cancel(endpoint: str, job_id: str, request: Request) -> Response:
    jobs = _jobs(request, endpoint)
    await _job(request, endpoint, job_id)
    job = await jobs.cancel(job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    return json_response(job.to_wire())


@router.post("/retry/{job_id}", summary="Requeue a FAILED or TIMED_OUT job")
async def retry(endpoint: str, job_id: str, request: Request) -> Response:
    jobs = _jobs(request, endpoint)
    endpoints = services.endpoints(request)
    endpoints.spec(endpoint)  # an undeployed endpoint runs no retry
    endpoints.check_open(endpoint)
    await _job(request, endpoint, job_id)
    job = await jobs.retry(job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    return json_response({"id": job.id, "status": job.status.value})


@router.post("/purge-queue", summary="Drop every queued job")
async def purge_queue(endpoint: str, request: Request) -> Response:
    jobs = _jobs(request, endpoint)
    services.endpoints(request).spec(endpoint)
    removed = await jobs.purge(endpoint)
    return json_response({"removed": removed, "status": "completed"})


@router.get("/health", summary="Job and worker counts")
async def health(endpoint: str, request: Request) -> Response:
    jobs = _jobs(request, endpoint)
    services.endpoints(request).spec(endpoint)
    workers = services.fleet(request).counts(endpoint)
    return json_response({"jobs": await jobs.counts(endpoint), "workers": workers})
