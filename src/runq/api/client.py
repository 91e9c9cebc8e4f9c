"""The RunPod-compatible client API under /v2/{endpoint} (spec section 1)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from runq.api.client_models import RunRequest, inline_schema, parse_run_request
from runq.api.limits import check_input_depth
from runq.api.responses import json_response, parse_json, read_body
from runq.core.job import Job, JobStatus
from runq.errors import NotFound
from runq.fleet.controlplane import ControlPlane

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
    }
}


def _plane(request: Request, endpoint: str) -> ControlPlane:
    """The control plane, once the caller's key may invoke `endpoint` (401, 403, 429)."""
    request.app.state.keys.require(request, endpoint=endpoint)
    plane: ControlPlane = request.app.state.plane
    return plane


async def _run_body(request: Request, limit: int) -> Any:
    raw = await read_body(request, limit)
    body = parse_json(raw)
    check_input_depth(body, raw)
    return body


def _wait_s(request: Request, default_ms: int) -> float:
    raw = request.query_params.get("wait")
    wait_ms = int(raw) if raw is not None and raw.isdecimal() else default_ms
    return min(max(wait_ms, 1000), MAX_SYNC_WAIT_MS) / 1000


def _ttl_ms(request: Request) -> int | None:
    raw = request.query_params.get("ttl")
    return int(raw) if raw is not None and raw.isdecimal() else None


async def _job(plane: ControlPlane, endpoint: str, job_id: str) -> Job:
    plane.spec(endpoint)
    job = await plane.store.get(job_id)
    if job is None or job.endpoint != endpoint:
        raise NotFound(f"job '{job_id}' not found on endpoint '{endpoint}' (or past retention)")
    return job


@router.post("/run", openapi_extra=_BODY, summary="Submit a job")
async def run(endpoint: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    spec = plane.spec(endpoint)
    body = await _run_body(request, RUN_LIMIT)
    job = await plane.submit(
        parse_run_request(body, spec, sync=False, ttl_override_ms=_ttl_ms(request))
    )
    return json_response({"id": job.id, "status": job.status.value})


@router.post("/runsync", openapi_extra=_BODY, summary="Submit a job and wait for its result")
async def runsync(endpoint: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    spec = plane.spec(endpoint)
    body = await _run_body(request, RUNSYNC_LIMIT)
    job_request = parse_run_request(body, spec, sync=True, ttl_override_ms=_ttl_ms(request))
    wait = _wait_s(request, DEFAULT_SYNC_WAIT_MS)
    submitted = await plane.submit(job_request)
    job = await plane.wait_for(submitted.id, wait) or submitted
    if job.status.is_terminal:
        return json_response(job.to_wire())
    # Not done in time: the client polls /status now, so keep the result as long as /run's
    # (spec 1.4.2), and the reply must carry the id.
    await plane.store.keep_async(job.id)
    return json_response(job.to_wire(now=plane.clock()))


@router.api_route("/status/{job_id}", methods=["GET", "POST"], summary="A job's status")
async def status(endpoint: str, job_id: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    job = await _job(plane, endpoint, job_id)
    wire = job.to_wire(now=plane.clock())
    if job.status == JobStatus.IN_QUEUE:
        estimate = plane.start_estimate_s(endpoint)
        if estimate is not None:
            # runq's extra field (RunPod clients ignore it): while the endpoint scales from
            # zero, when this job should start, from the measured cold starts.
            wire["estimatedStartMs"] = round(estimate * 1000)
    return json_response(wire)


@router.api_route("/status-sync/{job_id}", methods=["GET", "POST"], summary="Wait for a job")
async def status_sync(endpoint: str, job_id: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    job = await _job(plane, endpoint, job_id)
    if job.sync:
        await plane.store.keep_async(job_id)
    waited = await plane.wait_for(job_id, _wait_s(request, DEFAULT_SYNC_WAIT_MS))
    return json_response((waited or job).to_wire(now=plane.clock()))


@router.api_route("/stream/{job_id}", methods=["GET", "POST"], summary="Drain streamed output")
async def stream(endpoint: str, job_id: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    await _job(plane, endpoint, job_id)
    raw = request.query_params.get("wait")
    hold = min(int(raw), MAX_SYNC_WAIT_MS) / 1000 if raw and raw.isdecimal() else STREAM_HOLD_S
    read = await plane.read_stream(job_id, hold)
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
    plane = _plane(request, endpoint)
    await _job(plane, endpoint, job_id)
    job = await plane.cancel(job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    return json_response(job.to_wire())


@router.post("/retry/{job_id}", summary="Requeue a FAILED or TIMED_OUT job")
async def retry(endpoint: str, job_id: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    await _job(plane, endpoint, job_id)
    job = await plane.retry(job_id)
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    return json_response({"id": job.id, "status": job.status.value})


@router.post("/purge-queue", summary="Drop every queued job")
async def purge_queue(endpoint: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    plane.spec(endpoint)
    removed = await plane.purge_queue(endpoint)
    return json_response({"removed": removed, "status": "completed"})


@router.get("/health", summary="Job and worker counts")
async def health(endpoint: str, request: Request) -> Response:
    plane = _plane(request, endpoint)
    plane.spec(endpoint)
    return json_response(await plane.health(endpoint))
