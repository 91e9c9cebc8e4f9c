"""The job service: every change of a job's state, and every wait on one.

Clients submit, wait, read streams, cancel, retry and purge here; the worker protocol
(runq.fleet.fleet) takes and finishes jobs here; the reaper times them out here. Each change
goes through the store first; then `job_ended` (the one hook for every way a job ends) wakes its
waiters, records its times and sends its webhook. Workers are not this module's business: a
running job cancelled is handed to `on_running_cancelled`, an arrival to `on_arrival`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from runq.core.idempotency import IdempotencyKey, Submission
from runq.core.job import Job, JobRequest, JobStatus, WorkerResult
from runq.errors import DiskFull
from runq.fleet.demand import DemandHistory
from runq.fleet.diskguard import DiskGuard
from runq.fleet.endpoints import Endpoints
from runq.fleet.job_timing import JobTimings
from runq.fleet.signals import Signals, wait_any
from runq.policy.retry import LostJobAction, decide_lost_job
from runq.store.base import FinishOutcome, JobStore, JobTiming, JobWindow, QueueStats, StreamRead
from runq.store.diskfull import is_disk_full

log = logging.getLogger("runq")

Clock = Callable[[], float]
T = TypeVar("T")
_RAN = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMED_OUT})
ArrivalHook = Callable[[Job], None]
CancelHook = Callable[[str, str], None]  # worker id, job id


def _ignore_arrival(job: Job) -> None:
    return None


def _ignore_cancel(worker_id: str, job_id: str) -> None:
    return None


class Jobs:
    def __init__(
        self,
        store: JobStore,
        endpoints: Endpoints,
        signals: Signals,
        disk: DiskGuard,
        clock: Clock,
        webhook_due: Callable[[], None],
        wait_slice_s: Callable[[], float] = lambda: math.inf,
    ) -> None:
        self._store = store
        self._endpoints = endpoints
        self._signals = signals
        self._disk = disk
        self._clock = clock
        self._webhook_due = webhook_due
        self._wait_slice_s = wait_slice_s
        self.demand = DemandHistory()  # recent arrivals and executions, for the scalers
        self.timings = JobTimings()  # delay and execution histograms for /metrics
        self.on_arrival: ArrivalHook = _ignore_arrival
        self.on_running_cancelled: CancelHook = _ignore_cancel

    # --- clients ------------------------------------------------------------------------
    async def submit(self, request: JobRequest) -> Job:
        """Queue a job; QueueFull (nothing stored) while the endpoint's max_queue jobs wait,
        Gone while the endpoint drains before it is undeployed, DiskFull on a full disk."""
        self._endpoints.check_open(request.endpoint)
        max_queue = self._endpoints.max_queue(request.endpoint)
        job = await self._guarded(self._store.enqueue(request, max_queue))
        self._arrived(job)
        return job

    async def submit_once(self, request: JobRequest, key: IdempotencyKey) -> Submission:
        """`submit` under an Idempotency-Key: the job the key names if it was seen in the last
        24 h (nothing queued), else a new one (`JobStore.enqueue_once`)."""
        self._endpoints.check_open(request.endpoint)
        max_queue = self._endpoints.max_queue(request.endpoint)
        submission = await self._guarded(self._store.enqueue_once(request, key, max_queue))
        if not submission.replayed and submission.job is not None:
            self._arrived(submission.job)
        return submission

    async def _guarded(self, enqueue: Awaitable[T]) -> T:
        """Runs an enqueue unless the data disk is full: what is accepted must be recordable
        to its end (DiskFull, HTTP 507, also when the write itself finds no room)."""
        if self._disk.full:
            if inspect.iscoroutine(enqueue):
                enqueue.close()
            raise DiskFull(self._disk.message)
        try:
            return await enqueue
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._disk.note_error(exc)
            raise DiskFull(self._disk.message) from exc

    def _arrived(self, job: Job) -> None:
        self.demand.arrived(job)
        self._signals.job_queued(job.endpoint)
        self.on_arrival(job)

    async def get(self, job_id: str) -> Job | None:
        return await self._store.get(job_id)

    async def keep_async(self, job_id: str) -> None:
        """A /runsync job is read through /status-sync: keep its result for the async TTL."""
        await self._store.keep_async(job_id)

    async def wait_for(
        self,
        job_id: str,
        timeout: float,
        done: Callable[[Job], bool] = lambda j: j.status.is_terminal,
    ) -> Job | None:
        """The job once `done(job)` holds, or as it is when `timeout` runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        signals = self._signals
        while True:
            gate = signals.job_gate(job_id)
            try:
                job = await self._store.get(job_id)
                remaining = deadline - loop.time()
                if job is None or done(job) or remaining <= 0 or signals.closed.is_set():
                    return job
                await wait_any(min(remaining, self._wait_slice_s()), gate.event, signals.closed)
            finally:
                signals.release(job_id, gate)

    async def read_stream(self, job_id: str, wait: float) -> StreamRead | None:
        """Chunks since the last read; waits up to `wait` for a first chunk or the end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        signals = self._signals
        while True:
            gate = signals.job_gate(job_id)
            try:
                read = await self._store.read_stream(job_id)
                remaining = deadline - loop.time()
                if read is None or read.chunks or read.job.status.is_terminal or remaining <= 0:
                    return read
                await wait_any(min(remaining, self._wait_slice_s()), gate.event, signals.closed)
                if signals.closed.is_set():
                    return await self._store.read_stream(job_id)
            finally:
                signals.release(job_id, gate)

    @property
    def closing(self) -> bool:
        """The control plane is shutting down: waits end now."""
        return self._signals.closed.is_set()

    async def cancel(self, job_id: str) -> Job | None:
        job, worker_id = await self._store.cancel(job_id)
        if job is not None:
            self._signals.job_changed(job_id)
            if worker_id is not None:
                self.on_running_cancelled(worker_id, job_id)
        return job

    async def retry(self, job_id: str) -> Job | None:
        job = await self._store.retry(job_id)
        if job is not None:
            self._signals.job_queued(job.endpoint)
            self._signals.job_changed(job_id)
        return job

    async def purge(self, endpoint: str) -> int:
        """Cancel every queued job of `endpoint`; their waiters (/runsync, status-sync, stream)
        answer CANCELLED at once. Returns how many."""
        purged = await self._store.purge_queue(endpoint)
        for job in purged:
            self.job_ended(job)
        return len(purged)

    def job_ended(self, job: Job) -> None:
        """After the store ended a job (a result, a failure, a timeout, a purge): wake its
        waiters, record its times for /metrics and the scalers, and send its webhook."""
        self._signals.job_changed(job.id)
        if job.status in _RAN:  # a cancelled job's time says nothing of the handler's
            self.timings.finished(job)
            self.demand.finished(job)
        if job.webhook:
            self._webhook_due()

    # --- reads for the API and the dashboard --------------------------------------------
    async def counts(self, endpoint: str) -> dict[str, Any]:
        """The `jobs` part of /health."""
        counts = await self._store.counts(endpoint)
        return {
            "completed": counts[JobStatus.COMPLETED],
            "failed": counts[JobStatus.FAILED] + counts[JobStatus.TIMED_OUT],
            "inProgress": counts[JobStatus.IN_PROGRESS],
            "inQueue": counts[JobStatus.IN_QUEUE],
            "retried": counts["retried"],
        }

    async def window(self, endpoint: str, since: float, until: float) -> JobWindow:
        return await self._store.job_window(endpoint, since, until)

    async def timings_of(self, endpoint: str, limit: int) -> list[JobTiming]:
        return await self._store.job_timings(endpoint, limit)

    async def recent(self, endpoint: str, limit: int) -> list[Job]:
        return await self._store.recent_jobs(endpoint, limit)

    async def queue_stats(self, endpoint: str) -> QueueStats:
        return await self._store.queue_stats(endpoint)

    async def queue_stats_many(self, endpoints: list[str]) -> dict[str, QueueStats]:
        return await self._store.queue_stats_many(endpoints)

    async def ended_totals_many(self, endpoints: list[str]) -> dict[str, dict[JobStatus, int]]:
        return await self._store.ended_totals_many(endpoints)

    async def running(self, endpoint: str | None = None) -> list[Job]:
        return await self._store.running(endpoint)

    # --- workers' side (runq.fleet.fleet) -----------------------------------------------
    async def take(self, endpoint: str, worker_id: str, limit: int) -> list[Job]:
        jobs = await self._store.take(endpoint, worker_id, limit)
        self._started(jobs)
        return jobs

    def _started(self, jobs: list[Job]) -> None:
        self.timings.started(jobs)
        for job in jobs:
            self._signals.job_changed(job.id)

    async def finish(
        self, job_id: str, worker_id: str, result: WorkerResult, then_take: int = 0
    ) -> FinishOutcome:
        """A final result; with `then_take`, the worker's next jobs in the same commit."""
        outcome = await self._store.finish(job_id, worker_id, result, then_take=then_take)
        if outcome.applied and outcome.job is not None:
            self.job_ended(outcome.job)
        self._started(outcome.taken)
        return outcome

    async def progress(self, job_id: str, worker_id: str, output: Any) -> None:
        if await self._store.progress(job_id, worker_id, output):
            self._signals.job_changed(job_id)

    async def append_stream(self, job_id: str, worker_id: str, chunk: Any) -> None:
        if await self._store.append_stream(job_id, worker_id, chunk):
            self._signals.job_changed(job_id)

    async def fail(
        self, job_id: str, worker_id: str | None, error: str, status: JobStatus = JobStatus.FAILED
    ) -> Job | None:
        ended = await self._store.fail(job_id, worker_id, error, status)
        if ended is not None:
            self.job_ended(ended)
        return ended

    async def lose(self, job: Job, cause: str) -> None:
        """Requeue or fail a running job whose worker let it go (policy decides)."""
        decision = decide_lost_job(job.retries, self._endpoints.max_retries(job.endpoint), cause)
        if job.worker_id is None:
            return
        if decision.action is LostJobAction.REQUEUE:
            if await self._store.requeue(job.id, job.worker_id) is not None:
                log.info("job %s requeued: %s", job.id, cause)
                self._signals.job_queued(job.endpoint)
        elif await self.fail(job.id, job.worker_id, decision.reason) is not None:
            log.warning("job %s failed: %s", job.id, decision.reason)
        self._signals.job_changed(job.id)

    async def requeue(self, job_id: str, worker_id: str) -> Job | None:
        """A running job back to the queue (shutdown after the grace)."""
        return await self._store.requeue(job_id, worker_id)

    # --- the reaper's sweeps ------------------------------------------------------------
    async def expire_queued(self, now: float) -> None:
        """Queued jobs past their TTL end."""
        for job in await self._store.expire_queued(now):
            self.job_ended(job)

    async def overdue(self, now: float) -> list[Job]:
        return await self._store.overdue(now)

    async def delete_expired(self, now: float) -> int:
        return await self._store.delete_expired(now)
