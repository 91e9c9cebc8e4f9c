"""The periodic sweep: timeouts, TTLs, lost workers and jobs, result retention.

Each decision is a pure function from `runq.policy.retry`; this module only gathers the facts,
applies the decisions through the store, and wakes whoever waits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from runq.core.job import JobStatus
from runq.core.worker import Worker, WorkerState
from runq.policy.retry import Overdue, overdue_reason, worker_is_lost

if TYPE_CHECKING:
    from runq.fleet.controlplane import ControlPlane

log = logging.getLogger("runq.reaper")

_RETENTION_EVERY_S = 5.0
_PING_MISSES_TO_LOSE = 2


_SILENT_BY_DESIGN = frozenset({WorkerState.PARKED, WorkerState.THROTTLED})


class Reaper:
    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane
        self._stop_deadlines: dict[tuple[str, str], float] = {}
        self._last_retention = 0.0

    def watch_stop(self, worker_id: str, job_id: str) -> None:
        self._stop_deadlines[(worker_id, job_id)] = (
            self._plane.clock() + self._plane.config.stop_grace_s
        )

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # one bad tick must not stop the sweeps
                log.exception("reaper tick failed")
            await asyncio.sleep(self._plane.config.tick_s)

    async def tick(self) -> None:
        plane = self._plane
        now = plane.clock()
        for job in await plane.store.expire_queued(now):
            plane.signals.job_changed(job.id)
        for job in await plane.store.overdue(now):
            reason = overdue_reason(
                now, job.created_at, job.started_at, job.execution_timeout_s, job.ttl_s
            )
            if reason is Overdue.NO:
                continue
            if reason is Overdue.EXECUTION_TIMEOUT:
                error = f"execution timeout of {job.execution_timeout_s:g}s exceeded"
            else:
                error = f"ttl of {job.ttl_s:g}s expired while the job ran"
            ended = await plane.store.fail(job.id, job.worker_id, error, JobStatus.TIMED_OUT)
            if ended is not None:
                plane.job_ended(ended)
                if job.worker_id is not None:
                    plane.stop_on_worker(job.worker_id, job.id)
        self._enforce_stops(now)
        await self._find_lost_workers(now)
        if now - self._last_retention >= _RETENTION_EVERY_S:
            self._last_retention = now
            await plane.store.delete_expired(now)

    def _enforce_stops(self, now: float) -> None:
        """A worker told to stop a job that still reports it after the grace is killed."""
        for key, deadline in list(self._stop_deadlines.items()):
            worker_id, job_id = key
            worker = self._plane.registry.get(worker_id)
            if worker is None:
                del self._stop_deadlines[key]
            elif now >= deadline:
                del self._stop_deadlines[key]
                if job_id in worker.pinged_jobs:  # its latest heartbeat still holds it
                    log.warning(
                        "worker %s still runs stopped job %s: replacing it", worker_id, job_id
                    )
                    self._plane.recycle(worker)

    async def _find_lost_workers(self, now: float) -> None:
        plane = self._plane
        for worker in plane.registry.all():
            if worker.last_seen is None or worker.state in _SILENT_BY_DESIGN:
                continue  # not started, frozen, or still in its cold start (init_timeout's job)
            if worker_is_lost(
                now, worker.last_seen, worker.started_at, plane.config.heartbeat_timeout_s
            ):
                log.warning("worker %s stopped answering: its jobs move on", worker.id)
                plane.registry.remove(worker.id)
                plane.signals.forget_worker(worker.id)
                plane.provisioner.kill(worker.id)
                await self._lose_held(worker, f"worker {worker.id} stopped sending heartbeats")

    async def _lose_held(self, worker: Worker, cause: str) -> None:
        for job in await self._plane.store.running(worker.endpoint):
            if job.worker_id == worker.id:
                await self._plane.lose_job(job, cause)
        worker.jobs.clear()

    async def reconcile_ping(self, worker: Worker) -> None:
        """A job we handed a worker, missing from its pings twice in a row, was lost (its
        result never came: a crash inside the SDK or a failed job-done, spec 2.9)."""
        now = self._plane.clock()
        settle = 2 * self._plane.config.ping_interval_s
        lost: list[str] = []
        for job_id, taken_at in list(worker.jobs.items()):
            if job_id in worker.pinged_jobs or now - taken_at < settle:
                worker.ping_misses.pop(job_id, None)
                continue
            misses = worker.ping_misses.get(job_id, 0) + 1
            worker.ping_misses[job_id] = misses
            if misses >= _PING_MISSES_TO_LOSE:
                lost.append(job_id)
        if not lost:
            return
        for job in await self._plane.store.running(worker.endpoint):
            if job.id in lost and job.worker_id == worker.id:
                await self._plane.lose_job(job, "the worker's heartbeats no longer list the job")
        for job_id in lost:
            self._plane.registry.released(worker.id, job_id)
