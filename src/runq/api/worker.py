"""The RunPod worker protocol under /v2/{endpoint} (spec section 2 and 6).

Plain Starlette routes, not FastAPI's: they carry every job twice (take, done) and are not
part of the public API schema, and FastAPI's per-request dependency solving cost about as much
as the rest of the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runq.api.auth import presented_key
from runq.api.forward import forward_to_leader
from runq.api.json_values import find_unsendable, may_be_unsendable
from runq.api.limits import RESULT_LIMIT
from runq.api.query import parse_count
from runq.api.responses import (
    NO_CONTENT,
    UnsendableJson,
    json_response,
    parse_json,
    read_body,
    read_json,
)
from runq.core.worker import Worker
from runq.errors import BadRequest, PayloadTooLarge, Unauthorized
from runq.fleet.fleet import Fleet

CHUNK_LIMIT = 1024 * 1024  # spec 1.4.5: 1 MB per stream chunk
MAX_BATCH = 64


def _worker(request: Request, endpoint: str, worker_id: str) -> tuple[Fleet, Worker]:
    """The calling worker, authenticated by its own token (or an admin key: a worker that runq
    did not start, e.g. on another machine, joins on its first call)."""
    fleet: Fleet = request.app.state.fleet
    key = presented_key(request)
    worker = fleet.authenticate(worker_id, key)
    if worker is None:
        try:
            request.app.state.keys.check_admin(key)  # an invoke-only key: 403
        except Unauthorized:
            raise Unauthorized(
                f"worker '{worker_id}' did not present its token (nor an admin API key)"
            ) from None
        request.app.state.endpoints.spec(endpoint)
        worker = fleet.join(endpoint, worker_id)
    if worker.endpoint != endpoint:
        raise Unauthorized(f"worker '{worker_id}' belongs to endpoint '{worker.endpoint}'")
    if worker.loaded_at is None and "boot" in request.query_params:
        _boot_marks(worker, request.query_params["boot"])
    return fleet, worker


def _boot_marks(worker: Worker, raw: str) -> None:
    """runq's worker SDK reports `boot=IMPORTED,LOADED` (epoch s) for the cold-start
    breakdown. Telemetry only: a malformed value is dropped rather than failing a take."""
    try:
        imported, loaded = (float(part) for part in raw.split(","))
    except ValueError:
        return
    worker.imported_at, worker.loaded_at = imported, loaded


def _in_progress(request: Request) -> bool:
    return request.query_params.get("job_in_progress", "0") not in ("0", "")


def _count(request: Request, name: str, default: int) -> int:
    return min(parse_count(request.query_params.get(name, str(default)), name), MAX_BATCH)


async def _refuse_unsendable(
    fleet: Fleet, worker: Worker, reports: list[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    """The reports JSON can carry; a job whose result holds NaN fails, as on job-done."""
    kept = []
    for job_id, result in reports:
        problem = find_unsendable(result)
        if problem is None:
            kept.append((job_id, result))
        else:
            await fleet.fail_oversized(worker, job_id, _refused(problem))
    return kept


def _refused(problem: str) -> str:
    return f"the handler's result is not valid JSON (RFC 8259), so runq refused it: {problem}"


def _ids(request: Request) -> tuple[str, str]:
    params = request.path_params
    return params["endpoint"], params["worker_id"]


async def job_take(request: Request) -> Response:
    fleet, worker = _worker(request, *_ids(request))
    jobs = await fleet.take(worker, 1, _in_progress(request))
    if not jobs:
        return NO_CONTENT  # only after holding the request: an instant 204 makes the SDK spin
    return json_response(jobs[0].to_take_payload())


async def job_take_batch(request: Request) -> Response:
    fleet, worker = _worker(request, *_ids(request))
    size = _count(request, "batch_size", 1)
    if size < 1:
        raise BadRequest("query 'batch_size': expected a positive integer, got 0")
    jobs = await fleet.take(worker, size, _in_progress(request))
    if not jobs:
        return NO_CONTENT
    return json_response([job.to_take_payload() for job in jobs])


async def job_stop(request: Request) -> Response:
    fleet, worker = _worker(request, *_ids(request))
    stops = await fleet.wait_stops(worker)
    if not stops:
        return NO_CONTENT
    return json_response({"jobsToStop": stops})


async def job_done(request: Request) -> Response:
    # The job id comes from the URL, never from X-Request-ID, which leaks (spec 6.4).
    fleet, worker = _worker(request, *_ids(request))
    job_id = request.path_params["job_id"]
    take = _count(request, "take", 0)  # runq's worker: the next job in the same round trip
    try:
        body = await read_json(request, RESULT_LIMIT, "result")
    except PayloadTooLarge as exc:
        # The worker will not report again: fail the job now (spec 6.20).
        await fleet.fail_oversized(worker, job_id, f"result too large: {exc}")
        raise BadRequest(f"result too large: {exc}") from None
    except UnsendableJson as exc:
        # Nor after a 400 for NaN in its output: fail the job, saying which field (README, API).
        await fleet.fail_oversized(worker, job_id, _refused(exc.problem))
        raise
    following = await fleet.report(worker, job_id, body, take)
    if not take:
        return json_response({})  # the runpod SDK ignores the body
    return json_response({"jobs": [job.to_take_payload() for job in following]})


async def job_done_batch(request: Request) -> Response:
    """runq's extension: `[{"id": job_id, "result": <job-done body>}, ...]` in one post."""
    fleet, worker = _worker(request, *_ids(request))
    take = _count(request, "take", 0)
    raw = await read_body(request, RESULT_LIMIT, "results")
    body = parse_json(raw, "results", strict=False)
    if not isinstance(body, list) or len(body) > MAX_BATCH:
        raise BadRequest(f"expected a JSON array of at most {MAX_BATCH} results")
    reports: list[tuple[str, Any]] = []
    for index, item in enumerate(body):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise BadRequest(f"results[{index}]: expected an object with a string 'id'")
        reports.append((item["id"], item.get("result")))
    if may_be_unsendable(raw):
        reports = await _refuse_unsendable(fleet, worker, reports)
    following = await fleet.report_group(worker, reports, take)
    return json_response({"jobs": [job.to_take_payload() for job in following]})


async def job_stream(request: Request) -> Response:
    fleet, worker = _worker(request, *_ids(request))
    job_id = request.path_params["job_id"]
    body = await read_json(request, CHUNK_LIMIT, "stream chunk")
    chunk = body.get("output") if isinstance(body, dict) else body
    await fleet.stream_chunk(worker, job_id, chunk)
    return json_response({})


async def ping(request: Request) -> Response:
    fleet, worker = _worker(request, *_ids(request))
    raw = request.query_params.get("job_id", "")
    job_ids = frozenset(job for job in raw.split(",") if job)
    await fleet.ping(worker, job_ids, dict(request.query_params))
    return json_response({})


Endpoint = Callable[[Request], Awaitable[Response]]
_ROUTES: list[tuple[str, Endpoint, str]] = [
    ("/job-take/{worker_id}", job_take, "GET"),
    ("/job-done/{worker_id}/{job_id}", job_done, "POST"),
    ("/job-done-batch/{worker_id}", job_done_batch, "POST"),
    ("/job-take-batch/{worker_id}", job_take_batch, "GET"),
    ("/job-stream/{worker_id}/{job_id}", job_stream, "POST"),
    ("/job-stop/{worker_id}", job_stop, "GET"),
    ("/ping/{worker_id}", ping, "GET"),
]


def _leader_only(handler: Endpoint) -> Endpoint:
    """On a standby replica, the call goes on to the leader (runq.api.forward)."""

    async def route(request: Request) -> Response:
        state = request.app.state
        if not state.leading():
            return await forward_to_leader(request, state.replication)
        return await handler(request)

    return route


routes = [
    Route(f"/v2/{{endpoint}}{path}", _leader_only(endpoint), methods=[method])
    for path, endpoint, method in _ROUTES
]
