"""The periodic sweep: timeouts, TTLs, lost workers and jobs, result retention.

Each decision is a pure function from `runq.policy.retry`; this module only gathers the facts
and applies the decisions through the job service (and, for workers, the fleet's own sweep).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from runq.core.job import JobStatus
from runq.fleet.jobs import Jobs
from runq.policy.retry import Overdue, overdue_reason

log = logging.getLogger("runq.reaper")

_RETENTION_EVERY_S = 5.0

Clock = Callable[[], float]


class WorkerSweep(Protocol):
    """What the reaper asks of the fleet (runq.fleet.fleet.Fleet)."""

    def stop_on_worker(self, worker_id: str, job_id: str) -> None: ...

    async def sweep(self, now: float) -> None: ...


class Reaper:
    def __init__(self, jobs: Jobs, workers: WorkerSweep, clock: Clock, tick_s: float) -> None:
        self._jobs = jobs
        self._workers = workers
        self._clock = clock
        self._tick_s = tick_s
        self._last_retention = 0.0

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # one bad tick must not stop the sweeps
                log.exception("reaper tick failed")
            await asyncio.sleep(self._tick_s)

    async def tick(self) -> None:
        jobs = self._jobs
        now = self._clock()
        await jobs.expire_queued(now)
        for job in await jobs.overdue(now):
            reason = overdue_reason(
                now, job.created_at, job.started_at, job.execution_timeout_s, job.ttl_s
            )
            if reason is Overdue.NO:
                continue
            if reason is Overdue.EXECUTION_TIMEOUT:
                error = f"execution timeout of {job.execution_timeout_s:g}s exceeded"
            else:
                error = f"ttl of {job.ttl_s:g}s expired while the job ran"
            ended = await jobs.fail(job.id, job.worker_id, error, JobStatus.TIMED_OUT)
            if ended is not None and job.worker_id is not None:
                self._workers.stop_on_worker(job.worker_id, job.id)
        await self._workers.sweep(now)
        if now - self._last_retention >= _RETENTION_EVERY_S:
            self._last_retention = now
            await jobs.delete_expired(now)
