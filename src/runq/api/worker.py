"""The RunPod worker protocol under /v2/{endpoint} (spec section 2 and 6)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from runq.api.auth import presented_key
from runq.api.responses import NO_CONTENT, json_response, read_json
from runq.core.worker import Worker
from runq.errors import BadRequest, PayloadTooLarge, Unauthorized
from runq.fleet.controlplane import ControlPlane

router = APIRouter(prefix="/v2/{endpoint}", tags=["worker"], include_in_schema=False)

RESULT_LIMIT = 20 * 1024 * 1024  # spec 2.7: RunPod rejects results over about 20 MB
CHUNK_LIMIT = 1024 * 1024  # spec 1.4.5: 1 MB per stream chunk
MAX_BATCH = 64


def _worker(request: Request, endpoint: str, worker_id: str) -> tuple[ControlPlane, Worker]:
    """The calling worker, authenticated by its own token (or an admin key: a worker that runq
    did not start, e.g. on another machine, joins on its first call)."""
    plane: ControlPlane = request.app.state.plane
    key = presented_key(request)
    worker = plane.registry.get(worker_id)
    if worker is not None and plane.registry.check_token(worker_id, key):
        pass
    elif request.app.state.keys.is_admin(key):
        plane.spec(endpoint)
        if worker is None:
            worker = plane.registry.register(endpoint, worker_id, managed=False)
    else:
        raise Unauthorized(f"worker '{worker_id}' did not present its token")
    if worker.endpoint != endpoint:
        raise Unauthorized(f"worker '{worker_id}' belongs to endpoint '{worker.endpoint}'")
    return plane, worker


def _in_progress(request: Request) -> bool:
    return request.query_params.get("job_in_progress", "0") not in ("0", "")


@router.get("/job-take/{worker_id}")
async def job_take(endpoint: str, worker_id: str, request: Request) -> Response:
    plane, worker = _worker(request, endpoint, worker_id)
    jobs = await plane.take(worker, 1, _in_progress(request))
    if not jobs:
        return NO_CONTENT  # only after holding the request: an instant 204 makes the SDK spin
    return json_response(jobs[0].to_take_payload())


@router.get("/job-take-batch/{worker_id}")
async def job_take_batch(endpoint: str, worker_id: str, request: Request) -> Response:
    plane, worker = _worker(request, endpoint, worker_id)
    raw = request.query_params.get("batch_size", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"query 'batch_size': expected a positive integer, got {raw!r}")
    jobs = await plane.take(worker, min(int(raw), MAX_BATCH), _in_progress(request))
    if not jobs:
        return NO_CONTENT
    return json_response([job.to_take_payload() for job in jobs])


@router.get("/job-stop/{worker_id}")
async def job_stop(endpoint: str, worker_id: str, request: Request) -> Response:
    plane, worker = _worker(request, endpoint, worker_id)
    stops = await plane.wait_stops(worker)
    if not stops:
        return NO_CONTENT
    return json_response({"jobsToStop": stops})


@router.post("/job-done/{worker_id}/{job_id}")
async def job_done(endpoint: str, worker_id: str, job_id: str, request: Request) -> Response:
    # The job id comes from the URL, never from X-Request-ID, which leaks (spec 6.4).
    plane, worker = _worker(request, endpoint, worker_id)
    try:
        body = await read_json(request, RESULT_LIMIT, "result")
    except PayloadTooLarge as exc:
        # The worker will not report again: fail the job now (spec 6.20).
        await plane.fail_oversized(worker, job_id, f"result too large: {exc}")
        raise BadRequest(f"result too large: {exc}") from None
    await plane.report(worker, job_id, body)
    return json_response({})


@router.post("/job-stream/{worker_id}/{job_id}")
async def job_stream(endpoint: str, worker_id: str, job_id: str, request: Request) -> Response:
    plane, worker = _worker(request, endpoint, worker_id)
    body = await read_json(request, CHUNK_LIMIT, "stream chunk")
    chunk = body.get("output") if isinstance(body, dict) else body
    await plane.stream_chunk(worker, job_id, chunk)
    return json_response({})


@router.get("/ping/{worker_id}")
async def ping(endpoint: str, worker_id: str, request: Request) -> Response:
    plane, worker = _worker(request, endpoint, worker_id)
    raw = request.query_params.get("job_id", "")
    job_ids = frozenset(job for job in raw.split(",") if job)
    await plane.ping(worker, job_ids, dict(request.query_params))
    return json_response({})
