"""What each dashboard page shows, gathered from the same sources as the admin API."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from runq.api import services
from runq.api.admin import endpoint_row, worker_row
from runq.core.job import Job
from runq.web import svg
from runq.web.history import History

RECENT_JOBS = 30
HISTOGRAM_JOBS = 500  # the latest jobs a worker ran to the end


async def endpoint_rows(request: HTTPConnection) -> list[dict[str, Any]]:
    return [await endpoint_row(request, name) for name in services.endpoints(request).names()]


def _job_row(job: Job, now: float) -> dict[str, Any]:
    delay = None
    if job.started_at is not None:
        delay = job.started_at - job.created_at
    elif not job.status.is_terminal:
        delay = now - job.created_at  # still waiting
    execution = None
    if job.started_at is not None:
        execution = (job.finished_at or now) - job.started_at
    return {
        "id": job.id,
        "status": job.status.value,
        "age_s": now - job.created_at,
        "delay_s": delay,
        "execution_s": execution,
        "worker_id": job.worker_id or "",
        "error": job.error or "",
        "cancellable": not job.status.is_terminal,
    }


async def endpoint_live(request: HTTPConnection, history: History, name: str) -> dict[str, Any]:
    """The endpoint page's live part: counts, workers, charts, recent jobs.

    Raises:
        NotFound: the endpoint is not deployed.
    """
    row = await endpoint_row(request, name)
    now = services.clock(request)()
    job_service = services.jobs(request)
    jobs = await job_service.recent(name, RECENT_JOBS)
    timings = await job_service.timings_of(name, HISTOGRAM_JOBS)
    samples = history.samples(name)
    over_time = svg.line_chart(
        {
            "queued": [(s.at, s.queued) for s in samples],
            "in progress": [(s.at, s.in_progress) for s in samples],
            "workers": [(s.at, s.workers) for s in samples],
        },
        "queue length and workers over time",
        now,
    )
    delays = [max(0.0, t.started_at - t.created_at) for t in timings]
    executions = [max(0.0, t.finished_at - t.started_at) for t in timings]
    return {
        "row": row,
        "workers": [worker_row(request, w) for w in services.fleet(request).workers(name)],
        "jobs": [_job_row(job, now) for job in jobs],
        "chart": over_time,
        "delay_histogram": svg.histogram(delays, "delay time histogram"),
        "execution_histogram": svg.histogram(executions, "execution time histogram"),
        "histogram_jobs": len(timings),
    }


async def endpoint_config(request: HTTPConnection, name: str) -> str:
    """The endpoint file as deployed (stored), for the configuration panel."""
    return await services.endpoints(request).stored_text(name) or ""
