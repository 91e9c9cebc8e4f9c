"""Workers' logs over the admin API: a worker's, an endpoint's, the lines of one job; as JSON,
or followed live as server-sent events (`?follow=true`).

    GET /admin/endpoints/{name}/logs?worker=ID&since=10m&tail=200&follow=true
    GET /admin/workers/{id}/logs?since=...&tail=...&follow=true
    GET /admin/jobs/{id}/logs

`since` is a duration back from now (`90`, `10m`, `2h`) or, with `at:`, an epoch time
(`at:1764921600.5`). A followed stream sends the backlog first, then each new line as one
`data: {"at": ..., "worker": ..., "line": ...}` event; it ends (`event: end`) when no worker it
follows is alive any more and nothing new came for a second, or when the client goes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from runq.api import services
from runq.api.responses import json_response
from runq.core.durations import parse_duration
from runq.errors import BadRequest, NotFound
from runq.fleet.logread import (
    Follower,
    LogLine,
    files_of,
    find_worker,
    is_safe_id,
    read_lines,
    workers_of,
)

router = APIRouter(prefix="/admin", tags=["admin"])

DEFAULT_TAIL = 200
MAX_TAIL = 100_000
FOLLOW_POLL_S = 0.2
END_AFTER_S = 1.0  # a follow ends this long after its last worker is gone and quiet
JOB_SLACK_S = 0.2  # a line printed just before a job's end is read a moment later


def _admin(request: Request) -> None:
    request.app.state.keys.require_admin(request)


def _log_dir(request: Request) -> Path:
    return services.config(request).data_dir / "logs"


def _since(request: Request, now: float) -> float | None:
    value = request.query_params.get("since")
    if value is None or value == "":
        return None
    if value.startswith("at:"):
        try:
            moment = float(value[3:])
        except ValueError:
            moment = float("nan")
        if not moment == moment or moment < 0 or moment > 1e11:  # NaN, negative, absurd
            raise BadRequest(f"field 'since': expected at:<epoch seconds>, got {value[:40]!r}")
        return moment
    try:
        return now - parse_duration(value if not value.isdigit() else int(value))
    except (ValueError, OverflowError):
        raise BadRequest(
            f"field 'since': expected a duration back from now such as 90, '10m', '2h', "
            f"or 'at:<epoch seconds>', got {value[:40]!r}"
        ) from None


def _tail(request: Request) -> int:
    value = request.query_params.get("tail", str(DEFAULT_TAIL))
    if not value.isascii() or not value.isdigit() or len(value) > 7 or int(value) > MAX_TAIL:
        raise BadRequest(f"field 'tail': expected a number of lines, 0 to {MAX_TAIL}")
    return int(value)


def _follow(request: Request) -> bool:
    value = request.query_params.get("follow", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise BadRequest(f"field 'follow': expected true or false, got {value[:20]!r}")
    return value in ("true", "1")


@router.get("/endpoints/{name}/logs", summary="An endpoint's worker logs (JSON or followed)")
async def endpoint_logs(request: Request, name: str) -> Response:
    _admin(request)
    if name not in services.endpoints(request) and not (_log_dir(request) / name).is_dir():
        raise NotFound(f"no endpoint '{name}'")
    worker = request.query_params.get("worker")
    if worker is not None and not is_safe_id(worker):
        raise BadRequest("field 'worker': not a worker id")
    return await _answer(request, name, [worker] if worker else None)


@router.get("/workers/{worker_id}/logs", summary="One worker's log (JSON or followed)")
async def worker_logs(request: Request, worker_id: str) -> Response:
    _admin(request)
    endpoint = _endpoint_of(request, worker_id)
    return await _answer(request, endpoint, [worker_id])


async def follow_worker(request: Request, worker_id: str) -> Response:
    """A worker's log followed live, for a caller that checked the key itself (the
    dashboard's page, signed in by its session cookie: EventSource sends no header)."""
    endpoint = _endpoint_of(request, worker_id)
    log_dir = _log_dir(request)
    tail = _tail(request)
    lines = await asyncio.to_thread(read_lines, log_dir, endpoint, [worker_id], None, None, tail)
    return StreamingResponse(
        _follow_stream(request, endpoint, [worker_id], lines),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/jobs/{job_id}/logs", summary="What the job's worker printed while it ran the job")
async def job_logs(request: Request, job_id: str) -> Response:
    _admin(request)
    job = await services.jobs(request).get(job_id)
    if job is None:
        raise NotFound(f"no job '{job_id}' (unknown, or deleted after its retention)")
    lines: list[LogLine] = []
    if job.worker_id is not None and job.started_at is not None and is_safe_id(job.worker_id):
        until = job.finished_at + JOB_SLACK_S if job.finished_at is not None else None
        lines = await asyncio.to_thread(
            read_lines,
            _log_dir(request),
            job.endpoint,
            [job.worker_id],
            job.started_at,
            until,
            MAX_TAIL,
        )
    return json_response(
        {
            "job": job.id,
            "worker": job.worker_id,
            "status": job.status.value,
            "lines": [line.as_json() for line in lines],
        }
    )


def _endpoint_of(request: Request, worker_id: str) -> str:
    if not is_safe_id(worker_id):
        raise NotFound(f"no worker '{worker_id[:80]}'")
    history = services.fleet(request).history()
    known = next((w for w in history if w.id == worker_id), None)
    if known is not None:
        return known.endpoint
    endpoint = find_worker(_log_dir(request), worker_id)
    if endpoint is None:
        raise NotFound(f"no worker '{worker_id}' (and no log of one)")
    return endpoint


async def _answer(request: Request, endpoint: str, workers: list[str] | None) -> Response:
    now = time.time()
    since, tail, follow = _since(request, now), _tail(request), _follow(request)
    log_dir = _log_dir(request)
    chosen: list[str] = (
        workers if workers is not None else await asyncio.to_thread(workers_of, log_dir, endpoint)
    )
    lines = await asyncio.to_thread(read_lines, log_dir, endpoint, chosen, since, None, tail)
    if not follow:
        return json_response({"endpoint": endpoint, "lines": [line.as_json() for line in lines]})
    return StreamingResponse(
        _follow_stream(request, endpoint, workers, lines),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(line: LogLine) -> bytes:
    return b"data: " + json.dumps(line.as_json(), ensure_ascii=False).encode() + b"\n\n"


async def _follow_stream(
    request: Request,
    endpoint: str,
    workers: list[str] | None,
    backlog: list[LogLine],
) -> AsyncIterator[bytes]:
    log_dir = _log_dir(request)
    fleet = services.fleet(request)
    followers: dict[str, Follower] = {}

    def track(worker: str) -> None:
        if worker not in followers:
            follower = Follower(log_dir / endpoint / f"{worker}.log", worker)
            if files_of(log_dir, endpoint, worker):
                follower.skip_to_end()  # the backlog already holds what is there now
            followers[worker] = follower

    for worker in workers or workers_of(log_dir, endpoint):
        track(worker)
    for line in backlog:
        yield _event(line)
    yield b": following\n\n"
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        if workers is None:  # an endpoint's: workers started since then join
            for worker in workers_of(log_dir, endpoint):
                track(worker)
        fresh = [line for f in followers.values() for line in f.poll()]
        fresh.sort(key=lambda line: line.at or 0.0)
        for line in fresh:
            yield _event(line)
        alive = {w.id for w in fleet.workers(endpoint)}
        wanted = set(workers) if workers is not None else None
        if fresh or (alive & wanted if wanted is not None else alive):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= END_AFTER_S:
            yield b"event: end\ndata: {}\n\n"
            return
        await asyncio.sleep(FOLLOW_POLL_S)  # polling the file: the copy is runq's own
