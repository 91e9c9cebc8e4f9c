"""The admin API used by the CLI: deploy and list endpoints, see workers and jobs, manage
API keys. Every route needs a key with the `admin` scope."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.requests import HTTPConnection
from starlette.responses import Response

from runq.api import endpoint_metrics, services
from runq.api.auth import ApiKeys
from runq.api.query import parse_count
from runq.api.responses import json_response, read_json
from runq.core.keys import parse_name, parse_scopes
from runq.core.spec import load_spec, loads_spec
from runq.core.worker import Worker, WorkerState
from runq.errors import BadRequest, NotFound
from runq.policy.coldstart import cold_start, delay_breakdown

router = APIRouter(prefix="/admin", tags=["admin"])


def _keys(request: Request) -> ApiKeys:
    """The key registry, once the caller's key is an admin key (401, 403)."""
    keys: ApiKeys = request.app.state.keys
    keys.require_admin(request)
    return keys


@router.get("/endpoints", summary="Deployed endpoints with job and worker counts")
async def list_endpoints(request: Request) -> Response:
    _keys(request)
    names = services.endpoints(request).names()
    return json_response([await endpoint_row(request, name) for name in names])


async def endpoint_row(request: HTTPConnection, name: str) -> dict[str, Any]:
    """One row of GET /admin/endpoints (the dashboard's endpoint list shows the same)."""
    endpoints, jobs = services.endpoints(request), services.jobs(request)
    spec = endpoints.spec(name)
    health = {
        "jobs": await jobs.counts(name),
        "workers": services.fleet(request).counts(name),
    }
    now = services.clock(request)()
    cost = services.ledger(request).endpoint(name, now)
    window = await jobs.window(name, now - endpoint_metrics.DEFAULT_WINDOW_S, now)
    return {
        "name": name,
        "type": spec.type,
        "path": str(spec.source_path or ""),
        "draining": endpoints.draining(name),  # undeployed with --drain, jobs still run
        "active_workers": spec.scaling.active_workers,
        "max_workers": spec.scaling.max_workers,
        "cost": {
            "total_usd": cost.cost,
            "billed_s": round(cost.billed_s, 3),
            "cold_start_usd": cost.cold_start_cost,
            "idle_usd": cost.idle_cost,
            "running_usd": cost.running_cost,
            "workers": cost.workers,
        },
        "latency": endpoint_metrics.latency_body(window),
        **health,
    }


@router.get(
    "/endpoints/{name}/metrics",
    summary="An endpoint's jobs, latency percentiles, cold starts and cost over a window",
)
async def endpoint_window(name: str, request: Request) -> Response:
    """`window`: seconds back from now (default 3600). Jobs count once they ended in it."""
    _keys(request)
    window_s = endpoint_metrics.parse_window(request.query_params.get("window"))
    return json_response(await endpoint_metrics.window_metrics(request, name, window_s))


@router.get(
    "/endpoints/{name}/jobs",
    summary="An endpoint's recently finished jobs with their times, and its scaling section",
)
async def endpoint_jobs(name: str, request: Request) -> Response:
    """`limit`: most recent jobs (default 1000, at most 10000) that a worker ran to the end.
    Times are epoch seconds; `delay_s` is created to started, `execution_s` started to
    finished. `runq advise --endpoint` fits its distributions to these."""
    _keys(request)
    spec = services.endpoints(request).spec(name)
    limit = parse_count(request.query_params.get("limit", str(JOBS_LIMIT_DEFAULT)), "limit")
    timings = await services.jobs(request).timings_of(name, min(limit, JOBS_LIMIT_MAX))
    jobs = [
        {
            "id": t.id,
            "status": t.status.value,
            "created_at": t.created_at,
            "started_at": t.started_at,
            "finished_at": t.finished_at,
            "delay_s": max(0.0, t.started_at - t.created_at),
            "execution_s": max(0.0, t.finished_at - t.started_at),
        }
        for t in timings
    ]
    scaling = dataclasses.asdict(spec.scaling)
    return json_response({"endpoint": name, "scaling": scaling, "jobs": jobs})


JOBS_LIMIT_DEFAULT = 1000
JOBS_LIMIT_MAX = 10000


@router.post(
    "/endpoints/{name}/workers",
    summary="Change an endpoint's active and max workers (kept across restarts)",
)
async def set_workers(name: str, request: Request) -> Response:
    """`{"active_workers": 1, "max_workers": 4}`; running workers are not restarted."""
    _keys(request)
    body = await read_json(request, 64 * 1024)
    fields = ("active_workers", "max_workers")
    if not isinstance(body, dict) or not all(type(body.get(f)) is int for f in fields):
        raise BadRequest('expected {"active_workers": <int>, "max_workers": <int>}')
    spec = await services.deployments(request).set_workers(
        name, body["active_workers"], body["max_workers"]
    )
    return json_response({"endpoint": name, "scaling": dataclasses.asdict(spec.scaling)})


@router.patch("/endpoints/{name}", summary="Change an endpoint's active and/or max workers")
async def patch_endpoint(name: str, request: Request) -> Response:
    """`{"active_workers"?: 1, "max_workers"?: 4}`: takes effect at once (extra workers are
    released, idle ones first) and is kept across restarts."""
    _keys(request)
    spec = services.endpoints(request).spec(name)
    body = await read_json(request, 64 * 1024)
    fields = ("active_workers", "max_workers")
    if not isinstance(body, dict) or not body or set(body) - set(fields):
        raise BadRequest('expected {"active_workers"?: <int>, "max_workers"?: <int>}')
    for field in fields:
        if field in body and type(body[field]) is not int:
            raise BadRequest(f"field '{field}': expected an integer, got {body[field]!r}")
    active = body.get("active_workers", spec.scaling.active_workers)
    maximum = body.get("max_workers", spec.scaling.max_workers)
    spec = await services.deployments(request).set_workers(name, active, maximum)
    return json_response({"endpoint": name, "scaling": dataclasses.asdict(spec.scaling)})


@router.delete("/endpoints/{name}", summary="Undeploy an endpoint (kept across restarts)")
async def undeploy(name: str, request: Request) -> Response:
    """New jobs get 410. Without `drain`: queued and running jobs are cancelled and the workers
    stop. With `?drain=1`: queued and running jobs run to their end, then the workers stop. The
    endpoint's jobs stay readable by id for their retention."""
    _keys(request)
    drain = request.query_params.get("drain", "") not in ("", "0", "false")
    return json_response(await services.deployments(request).undeploy(name, drain))


@router.post("/endpoints", summary="Deploy an endpoint file (or replace one)")
async def deploy(request: Request) -> Response:
    _keys(request)
    body = await read_json(request, 1024 * 1024)
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise BadRequest('expected {"path": "/abs/path/endpoint.toml", "toml"?: "..."}')
    path = Path(body["path"])
    toml = body.get("toml")
    spec = loads_spec(toml, path) if isinstance(toml, str) else load_spec(path)
    await services.deployments(request).deploy(spec, toml if isinstance(toml, str) else None)
    return json_response({"name": spec.name, "status": "deployed"})


@router.get("/workers", summary="Workers, their state, timeline, placement and cost")
async def workers(request: Request) -> Response:
    """Live workers; with `all=1` terminated ones too (the most recent few hundred)."""
    _keys(request)
    fleet = services.fleet(request)
    endpoint = request.query_params.get("endpoint")
    every = request.query_params.get("all", "") not in ("", "0")
    found = fleet.history(endpoint) if every else fleet.workers(endpoint)
    return json_response([worker_row(request, w) for w in found])


def worker_row(request: HTTPConnection, w: Worker) -> dict[str, Any]:
    now = services.clock(request)()
    where = w.placement
    cost = services.ledger(request).worker(w, now)
    return {
        "id": w.id,
        "endpoint": w.endpoint,
        "state": w.state.value,
        "since_s": round(now - w.since, 3),
        "idle_s": round(now - w.since, 3) if w.state == WorkerState.IDLE else 0.0,
        "active": w.active,
        "draining": w.draining,  # takes no new job: stopping, retiring or replaced by a roll
        "managed": w.managed,
        "pid": services.fleet(request).pid(w.id),
        "host": where.host if where else None,
        "gpu_type": where.gpu_type if where else None,
        "gpus": list(where.gpu_indices) if where else [],
        "jobs": sorted(w.jobs),
        "jobs_done": w.jobs_done,
        "uptime_s": round(now - w.started_at, 3),
        "cold_start_s": None if w.cold_start_s is None else round(w.cold_start_s, 3),
        "cold_start": None if (phases := cold_start(w)) is None else phases.as_dict(),
        "forked": w.forked,
        # Image workers: the image's digest (its id when built here) and the bytes pulled.
        "image": {"digest": w.image_digest, "pull_bytes": w.image_pull_bytes}
        if w.image_digest
        else None,
        "last_seen_s_ago": None if w.last_seen is None else round(now - w.last_seen, 3),
        "runpod_version": w.runpod_version,
        "unhealthy_reason": w.unhealthy_reason,
        "cost_usd": cost.cost,
        "billed_s": round(cost.billed_s, 3),
        "transitions": [
            {"at": t.at, "state": t.state.value, "reason": t.reason} for t in w.transitions
        ],
    }


@router.get("/jobs/{job_id}", summary="A job by id alone")
async def job(job_id: str, request: Request) -> Response:
    _keys(request)
    found = await services.jobs(request).get(job_id)
    if found is None:
        raise NotFound(f"job '{job_id}' not found (or past retention)")
    now = services.clock(request)()
    split = services.ledger(request).job(found, now)
    cost = None
    if split is not None:
        cost = {
            "execution_usd": split.execution,
            "cold_start_share_usd": split.cold_start,
            "idle_share_usd": split.idle,
            "total_usd": split.total,
        }
    # Why it waited: split over the marks of the worker that took it (runq.policy.coldstart).
    history = services.fleet(request).history()
    served_by = next((w for w in history if w.id == found.worker_id), None)
    delay = delay_breakdown(found.created_at, found.started_at, served_by, now).as_dict()
    return json_response(
        {
            "endpoint": found.endpoint,
            **found.to_wire(now=now),
            "cost": cost,
            "delay_breakdown": delay,
        }
    )


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job by id alone")
async def cancel(job_id: str, request: Request) -> Response:
    _keys(request)
    found = await services.jobs(request).cancel(job_id)
    if found is None:
        raise NotFound(f"job '{job_id}' not found (or past retention)")
    return json_response({"endpoint": found.endpoint, **found.to_wire()})


@router.get("/cache", summary="This host's model cache: models, sizes, last use")
async def model_cache(request: Request) -> Response:
    """Most recently used first; `max_bytes` is the size the cache is evicted down to."""
    _keys(request)
    cache = services.fleet(request).provisioner.models
    models = [dataclasses.asdict(model) for model in cache.ls()]
    return json_response({"max_bytes": cache.max_bytes, "models": models})


@router.post("/keys", summary="Create an API key (its text is in this answer only)")
async def create_key(request: Request) -> Response:
    """`{"name"?: "ci", "scopes": ["admin"] or ["invoke:ENDPOINT", ...]}`."""
    keys = _keys(request)
    body = await read_json(request, 64 * 1024)
    if not isinstance(body, dict):
        raise BadRequest('expected {"name"?: "...", "scopes": ["admin" | "invoke:ENDPOINT", ...]}')
    scopes = body.get("scopes")
    if not isinstance(scopes, list):
        raise BadRequest("field 'scopes': expected a list such as ['invoke:echo'] or ['admin']")
    key, text = await keys.create(parse_name(body.get("name")), parse_scopes(scopes))
    return json_response({**key.public(), "key": text})


@router.get("/keys", summary="API keys: ids, names, scopes, dates (never a key or its hash)")
async def list_keys(request: Request) -> Response:
    return json_response([key.public() for key in _keys(request).listed()])


@router.delete("/keys/{key_id}", summary="Revoke an API key")
async def revoke_key(key_id: str, request: Request) -> Response:
    key = await _keys(request).revoke(key_id)
    return json_response(key.public())
