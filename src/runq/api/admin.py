"""The admin API used by the CLI: deploy and list endpoints, see workers and jobs, manage
API keys. Every route needs a key with the `admin` scope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from runq.api.auth import ApiKeys
from runq.api.responses import json_response, read_json
from runq.core.keys import parse_name, parse_scopes
from runq.core.spec import load_spec, loads_spec
from runq.core.worker import Worker, WorkerState
from runq.errors import BadRequest, NotFound
from runq.fleet.controlplane import ControlPlane

router = APIRouter(prefix="/admin", tags=["admin"])


def _plane(request: Request) -> ControlPlane:
    _keys(request)
    plane: ControlPlane = request.app.state.plane
    return plane


def _keys(request: Request) -> ApiKeys:
    """The key registry, once the caller's key is an admin key (401, 403)."""
    keys: ApiKeys = request.app.state.keys
    keys.require_admin(request)
    return keys


@router.get("/endpoints", summary="Deployed endpoints with job and worker counts")
async def list_endpoints(request: Request) -> Response:
    plane = _plane(request)
    rows: list[dict[str, Any]] = []
    for name, spec in sorted(plane.specs.items()):
        health = await plane.health(name)
        cost = plane.ledger.endpoint(name, plane.clock())
        rows.append(
            {
                "name": name,
                "type": spec.type,
                "path": str(spec.source_path or ""),
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
                **health,
            }
        )
    return json_response(rows)


@router.post("/endpoints", summary="Deploy an endpoint file (or replace one)")
async def deploy(request: Request) -> Response:
    plane = _plane(request)
    body = await read_json(request, 1024 * 1024)
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise BadRequest('expected {"path": "/abs/path/endpoint.toml", "toml"?: "..."}')
    path = Path(body["path"])
    toml = body.get("toml")
    spec = loads_spec(toml, path) if isinstance(toml, str) else load_spec(path)
    await plane.deploy(spec, toml if isinstance(toml, str) else None)
    return json_response({"name": spec.name, "status": "deployed"})


@router.get("/workers", summary="Workers, their state, timeline, placement and cost")
async def workers(request: Request) -> Response:
    """Live workers; with `all=1` terminated ones too (the most recent few hundred)."""
    plane = _plane(request)
    endpoint = request.query_params.get("endpoint")
    every = request.query_params.get("all", "") not in ("", "0")
    found = plane.registry.history(endpoint) if every else plane.registry.all(endpoint)
    return json_response([worker_row(plane, w) for w in found])


def worker_row(plane: ControlPlane, w: Worker) -> dict[str, Any]:
    now = plane.clock()
    where = w.placement
    cost = plane.ledger.worker(w, now)
    return {
        "id": w.id,
        "endpoint": w.endpoint,
        "state": w.state.value,
        "since_s": round(now - w.since, 3),
        "idle_s": round(now - w.since, 3) if w.state == WorkerState.IDLE else 0.0,
        "active": w.active,
        "managed": w.managed,
        "pid": plane.provisioner.pid(w.id),
        "host": where.host if where else None,
        "gpu_type": where.gpu_type if where else None,
        "gpus": list(where.gpu_indices) if where else [],
        "jobs": sorted(w.jobs),
        "jobs_done": w.jobs_done,
        "uptime_s": round(now - w.started_at, 3),
        "cold_start_s": None if w.cold_start_s is None else round(w.cold_start_s, 3),
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
    plane = _plane(request)
    found = await plane.store.get(job_id)
    if found is None:
        raise NotFound(f"job '{job_id}' not found (or past retention)")
    now = plane.clock()
    split = plane.ledger.job(found, now)
    cost = None
    if split is not None:
        cost = {
            "execution_usd": split.execution,
            "cold_start_share_usd": split.cold_start,
            "idle_share_usd": split.idle,
            "total_usd": split.total,
        }
    return json_response({"endpoint": found.endpoint, **found.to_wire(now=now), "cost": cost})


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job by id alone")
async def cancel(job_id: str, request: Request) -> Response:
    plane = _plane(request)
    found = await plane.cancel(job_id)
    if found is None:
        raise NotFound(f"job '{job_id}' not found (or past retention)")
    return json_response({"endpoint": found.endpoint, **found.to_wire()})


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
