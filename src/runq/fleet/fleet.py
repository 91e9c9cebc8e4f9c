"""The fleet service: every change of a worker's state, and the worker protocol.

Workers take, report, stream and ping here (the API's /v2/{endpoint}/job-take... routes); the
scheduler starts, parks, revives and stops them here; lost workers and stuck jobs are handled
here. Jobs change only through `runq.fleet.jobs.Jobs`; which worker to start or park is the
scheduler's decision (policy), passed in through `scheduler_poke` and `on_worker_exit`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from runq.core.config import ServerConfig
from runq.core.job import Job, parse_worker_result
from runq.core.spec import EndpointSpec
from runq.core.worker import Placement, Worker, WorkerState
from runq.fleet import lifecycle
from runq.fleet.jobs import Jobs
from runq.fleet.provisioner import Provisioner
from runq.fleet.registry import WorkerRegistry
from runq.fleet.signals import Signals, wait_any
from runq.policy.retry import worker_is_lost

log = logging.getLogger("runq")

Clock = Callable[[], float]
ExitHook = Callable[[Worker, bool], None]  # the worker, whether its exit was expected

_SERVING = frozenset({WorkerState.IDLE, WorkerState.RUNNING, WorkerState.INITIALIZING})
_TAKES_NOTHING = frozenset({WorkerState.PARKED, WorkerState.UNHEALTHY, WorkerState.TERMINATED})
_SILENT_BY_DESIGN = frozenset({WorkerState.PARKED, WorkerState.THROTTLED})
_PING_MISSES_TO_LOSE = 2


def _nothing() -> None:
    return None


def _no_exit_hook(worker: Worker, expected: bool) -> None:
    return None


class Fleet:
    def __init__(
        self,
        config: ServerConfig,
        clock: Clock,
        registry: WorkerRegistry,
        provisioner: Provisioner,
        signals: Signals,
        jobs: Jobs,
    ) -> None:
        self._config = config
        self._clock = clock
        self.registry = registry
        self.provisioner = provisioner
        self._signals = signals
        self._jobs = jobs
        self.draining = False  # runq shuts down: no job is handed out any more
        self.scheduler_poke: Callable[[], None] = _nothing
        self.on_worker_exit: ExitHook = _no_exit_hook
        self._stop_deadlines: dict[tuple[str, str], float] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    # --- reading ------------------------------------------------------------------------
    def workers(self, endpoint: str | None = None) -> list[Worker]:
        return self.registry.all(endpoint)

    def history(self, endpoint: str | None = None) -> list[Worker]:
        """Live workers and those that ended recently."""
        return self.registry.history(endpoint)

    def worker(self, worker_id: str) -> Worker | None:
        return self.registry.get(worker_id)

    def pid(self, worker_id: str) -> int | None:
        return self.provisioner.pid(worker_id)

    def counts(self, endpoint: str) -> dict[str, int]:
        """The `workers` part of /health."""
        return self.registry.counts(endpoint)

    def start_estimate_s(self, endpoint: str) -> float | None:
        """While an endpoint scales from zero: seconds until a worker is ready, from the median
        of its recent measured cold starts less the time the most advanced start has run.
        None when a worker is ready already, none is starting, or no cold start was measured.

        Example: cold starts of 8, 10 and 30 s (median 10), a worker started 3 s ago -> 7 s.
        """
        workers = self.registry.all(endpoint)
        if any(w.state in (WorkerState.IDLE, WorkerState.RUNNING) for w in workers):
            return None
        starting = [w for w in workers if w.state == WorkerState.INITIALIZING]
        typical = self.registry.typical_cold_start(endpoint)
        if not starting or typical is None:
            return None
        return max(0.0, typical - (self._clock() - min(w.started_at for w in starting)))

    def want_worker(self) -> None:
        """A request waits for a worker: let the scheduler decide now, not at its next tick."""
        self.scheduler_poke()

    def job_arrived(self, job: Job) -> None:
        """Jobs' arrival hook: nobody serves the endpoint, so start or revive a worker now,
        not at the next tick. (Not on every submit: a tick per job would cost more than it.)"""
        if not any(w.state in _SERVING for w in self.registry.all(job.endpoint)):
            self.scheduler_poke()

    # --- a worker joins -----------------------------------------------------------------
    def authenticate(self, worker_id: str, token: str) -> Worker | None:
        """The worker, if `token` is its own."""
        worker = self.registry.get(worker_id)
        if worker is None or not self.registry.check_token(worker_id, token):
            return None
        return worker

    def join(self, endpoint: str, worker_id: str) -> Worker:
        """A worker runq did not start (on another machine, with an admin key) joins."""
        return self.registry.get(worker_id) or self.registry.register(
            endpoint, worker_id, managed=False
        )

    async def adopt_running_jobs(self) -> None:
        """Jobs running when the last control plane died belong to workers we do not know.
        Remote ones may ping again; until then they count as silent since now."""
        for job in await self._jobs.running():
            if job.worker_id and self.registry.get(job.worker_id) is None:
                worker = self.registry.register(
                    job.endpoint, job.worker_id, token=secrets.token_urlsafe(24), managed=False
                )
                worker.last_seen = self._clock()
            holder = self.registry.get(job.worker_id) if job.worker_id else None
            if holder is not None:
                self.registry.took(holder, [job.id])

    # --- the worker protocol ------------------------------------------------------------
    async def take(self, worker: Worker, limit: int, job_in_progress: bool) -> list[Job]:
        """Long-poll: jobs for `worker`, or [] after the hold time or on shutdown."""
        self.registry.seen(worker)
        if not job_in_progress and worker.jobs:
            # It says it holds nothing, yet we handed it jobs it never reported on: their
            # results were lost (a crash, or a job-done that failed). Spec 2.5.
            await self._lose_jobs(worker, "the worker lost the job before reporting a result")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.take_hold_s
        while True:
            if self._closed_to(worker):
                return []
            ticket = self._signals.ticket(worker.endpoint)
            acted = False  # woken, and about to read the queue again
            try:
                jobs = await self._take_now(worker, limit)
                if jobs:
                    return jobs
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                await wait_any(remaining, ticket, self._signals.closed)
                acted = ticket.is_set() and not self._closed_to(worker)
            finally:
                self._signals.leave(worker.endpoint, ticket, acted)

    def _closed_to(self, worker: Worker) -> bool:
        """No more jobs for this worker: runq or the worker is shutting down, or it is parked
        (frozen: a job handed to it would wait until revival) or unhealthy."""
        return (
            self.draining
            or worker.draining
            or worker.state in _TAKES_NOTHING
            or self._signals.closed.is_set()
        )

    async def _take_now(self, worker: Worker, limit: int) -> list[Job]:
        jobs = await self._jobs.take(worker.endpoint, worker.id, limit)
        if jobs:
            self.registry.took(worker, [job.id for job in jobs])
        return jobs

    async def wait_stops(self, worker: Worker) -> list[str]:
        self.registry.seen(worker)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.take_hold_s
        signals = self._signals
        while True:
            stops = signals.pop_stops(worker.id)
            remaining = deadline - loop.time()
            if stops or remaining <= 0 or signals.closed.is_set() or worker.draining:
                return stops
            await wait_any(remaining, signals.stop_event(worker.id), signals.closed)

    async def report(self, worker: Worker, job_id: str, body: Any, take: int = 0) -> list[Job]:
        """A job-done body: progress or a final result. Duplicates and late reports are no-ops.

        With `take` > 0 (runq's worker), a final result also hands the worker up to `take`
        queued jobs at once, without holding: one round trip per job instead of two. A
        duplicate report gets none, so a retried post cannot take twice.
        """
        self.registry.seen(worker)
        result = parse_worker_result(body)
        if result.is_progress:
            await self._jobs.progress(job_id, worker.id, result.output)
            return []
        take = 0 if result.stop_pod or self._closed_to(worker) else take
        outcome = await self._jobs.finish(job_id, worker.id, result, then_take=take)
        self.registry.released(worker.id, job_id)
        if outcome.taken:
            self.registry.took(worker, [job.id for job in outcome.taken])
        if result.stop_pod:
            self.recycle(worker)
        return outcome.taken

    async def report_group(
        self, worker: Worker, reports: list[tuple[str, Any]], take: int = 0
    ) -> list[Job]:
        """Several final results of one worker (runq's worker groups short jobs' results),
        committed together; then up to `take` next jobs, unless none of the results was new."""
        self.registry.seen(worker)
        parsed = [(job_id, parse_worker_result(body)) for job_id, body in reports]
        outcomes = await asyncio.gather(
            *(self._jobs.finish(job_id, worker.id, result) for job_id, result in parsed)
        )
        for job_id, _ in parsed:
            self.registry.released(worker.id, job_id)
        if any(result.stop_pod for _, result in parsed):
            self.recycle(worker)
            return []
        if take <= 0 or not any(o.applied for o in outcomes) or self._closed_to(worker):
            return []
        return await self._take_now(worker, take)

    async def fail_oversized(self, worker: Worker, job_id: str, error: str) -> None:
        await self._jobs.fail(job_id, worker.id, error)
        self.registry.released(worker.id, job_id)

    async def stream_chunk(self, worker: Worker, job_id: str, chunk: Any) -> None:
        self.registry.seen(worker)
        await self._jobs.append_stream(job_id, worker.id, chunk)

    async def ping(self, worker: Worker, job_ids: frozenset[str], query: dict[str, str]) -> None:
        self.registry.seen(worker)
        worker.runpod_version = query.get("runpod_version", worker.runpod_version)
        worker.pinged_jobs = job_ids
        for job_id in self.registry.claimed(worker, job_ids):
            log.warning("worker %s claims job %s it was never handed", worker.id, job_id)
        if query.get("status") == "unhealthy":
            worker.unhealthy_reason = f"{query.get('check', '')}: {query.get('reason', '')}"
            if lifecycle.can_move(worker, WorkerState.UNHEALTHY):
                self.registry.move(worker, WorkerState.UNHEALTHY, worker.unhealthy_reason)
            log.warning("worker %s reports unhealthy: %s", worker.id, worker.unhealthy_reason)
            return
        await self._reconcile_ping(worker)

    async def _reconcile_ping(self, worker: Worker) -> None:
        """A job we handed a worker, missing from its pings twice in a row, was lost (its
        result never came: a crash inside the SDK or a failed job-done, spec 2.9)."""
        now = self._clock()
        settle = 2 * self._config.ping_interval_s
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
        for job in await self._jobs.running(worker.endpoint):
            if job.id in lost and job.worker_id == worker.id:
                await self._jobs.lose(job, "the worker's heartbeats no longer list the job")
        for job_id in lost:
            self.registry.released(worker.id, job_id)

    # --- stopping jobs and workers ------------------------------------------------------
    def stop_on_worker(self, worker_id: str, job_id: str) -> None:
        """Tell a worker to stop a job; kill it if it still runs the job after the grace."""
        self._signals.stop_job(worker_id, job_id)
        self._stop_deadlines[(worker_id, job_id)] = self._clock() + self._config.stop_grace_s

    def recycle(self, worker: Worker) -> None:
        """Replace a worker with a fresh process (stopPod, or a stuck job)."""
        worker.draining = True
        self._signals.forget_worker(worker.id)
        if not self.provisioner.kill(worker.id, "recycled"):
            log.info("worker %s asked to be recycled but runq did not start it", worker.id)

    async def sweep(self, now: float) -> None:
        """The reaper's part for workers: stuck stops and silent workers."""
        self._enforce_stops(now)
        await self._find_lost_workers(now)

    def _enforce_stops(self, now: float) -> None:
        """A worker told to stop a job that still reports it after the grace is killed."""
        for key, deadline in list(self._stop_deadlines.items()):
            worker_id, job_id = key
            worker = self.registry.get(worker_id)
            if worker is None:
                del self._stop_deadlines[key]
            elif now >= deadline:
                del self._stop_deadlines[key]
                if job_id in worker.pinged_jobs:  # its latest heartbeat still holds it
                    log.warning(
                        "worker %s still runs stopped job %s: replacing it", worker_id, job_id
                    )
                    self.recycle(worker)

    async def _find_lost_workers(self, now: float) -> None:
        for worker in self.registry.all():
            if worker.last_seen is None or worker.state in _SILENT_BY_DESIGN:
                continue  # not started, frozen, or still in its cold start (init_timeout's job)
            if worker_is_lost(
                now, worker.last_seen, worker.started_at, self._config.heartbeat_timeout_s
            ):
                log.warning("worker %s stopped answering: its jobs move on", worker.id)
                self.registry.remove(worker.id)
                self._signals.forget_worker(worker.id)
                self.provisioner.kill(worker.id)
                await self._lose_jobs(worker, f"worker {worker.id} stopped sending heartbeats")

    async def worker_exited(self, worker: Worker, code: int, expected: bool, why: str) -> None:
        """The provisioner's exit handler: the worker leaves the registry (TERMINATED, `why`
        in its timeline) and its jobs move on."""
        self.registry.remove(worker.id, why)
        self._signals.forget_worker(worker.id)
        await self._lose_jobs(worker, f"worker {worker.id} exited with code {code}")
        self.on_worker_exit(worker, expected)

    async def _lose_jobs(self, worker: Worker, cause: str) -> None:
        held = [
            job for job in await self._jobs.running(worker.endpoint) if job.worker_id == worker.id
        ]
        worker.jobs.clear()
        for job in held:
            await self._jobs.lose(job, cause)
            self.registry.released(worker.id, job.id)

    # --- the scheduler's actions --------------------------------------------------------
    def start(self, spec: EndpointSpec, where: Placement | None, active: bool, why: str) -> Worker:
        """A new worker: started at `where`, or waiting for a GPU (THROTTLED) without one."""
        if where is None:
            return self.registry.register(
                spec.name,
                state=WorkerState.THROTTLED,
                active=active,
                reason=f"no free GPU in {', '.join(spec.compute.gpu)}",
            )
        worker = self.registry.register(
            spec.name, active=active, placement=where, reason=f"started: {why}"
        )
        self.provisioner.start(spec, worker)
        return worker

    def start_throttled(self, spec: EndpointSpec, worker: Worker, where: Placement) -> None:
        """A worker that waited for a GPU got one."""
        worker.placement = where
        worker.started_at = self._clock()
        self.registry.move(worker, WorkerState.INITIALIZING, f"GPU free on {where.host}")
        self.provisioner.start(spec, worker)

    def mark_unhealthy(self, worker: Worker, reason: str) -> None:
        log.warning("worker %s unhealthy: %s", worker.id, reason)
        worker.unhealthy_reason = reason
        self.registry.move(worker, WorkerState.UNHEALTHY, reason)

    def drop(self, worker: Worker, reason: str) -> None:
        """Forget a worker that has no process (a throttled one no longer wanted)."""
        self.registry.remove(worker.id, reason)

    def park(self, worker: Worker) -> None:
        self.registry.move(worker, WorkerState.PARKED, "idle timeout: parked (FlashBoot)")
        self._signals.work_available(worker.endpoint)  # its pending take returns empty now
        if not self.provisioner.park(worker.id):
            self.stop(worker, "could not be parked")

    def revive(self, worker: Worker, reason: str) -> None:
        self.registry.move(worker, WorkerState.IDLE, f"revived (FlashBoot): {reason}")
        worker.last_seen = self._clock()  # it could not ping while frozen
        self.provisioner.revive(worker.id)
        self._signals.work_available(worker.endpoint)

    def stop(self, worker: Worker, reason: str) -> None:
        """Stop a worker (it finishes nothing more); returns at once, the stop runs on."""
        worker.draining = True
        self._signals.forget_worker(worker.id)
        if worker.state == WorkerState.THROTTLED:  # waiting for a GPU: nothing started yet
            self.registry.remove(worker.id, reason)
            return
        task = asyncio.create_task(self._stop(worker, reason))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop(self, worker: Worker, reason: str) -> None:
        """A started process reports its exit (worker_exited); one stopped while it was still
        being prepared (an image pull, a bundle) never ran, so it is taken out here."""
        await self.provisioner.stop(worker.id, reason)
        self._never_ran(worker, reason)

    def _never_ran(self, worker: Worker, reason: str) -> None:
        if self.registry.get(worker.id) is worker and self.provisioner.pid(worker.id) is None:
            self.registry.remove(worker.id, reason)

    def wake_takes(self, endpoint: str, queued: int) -> None:
        """Up to `queued` held takes of `endpoint` read the queue again (one job, one poll)."""
        self._signals.job_queued(endpoint, queued)

    def retire_takes(self, endpoint: str) -> None:
        """Held takes of `endpoint` answer now (a worker was told to take no more)."""
        self._signals.work_available(endpoint)

    async def stop_endpoint(self, endpoint: str, leading: bool) -> None:
        """Stop every worker of an undeployed endpoint (on the leader: the fleet is its)."""
        self._signals.work_available(endpoint)  # held takes answer empty
        for worker in self.registry.all(endpoint):
            if worker.state == WorkerState.THROTTLED and worker.managed:
                self.registry.remove(worker.id, "endpoint undeployed")  # nothing started yet
        if leading:
            await self.provisioner.stop_endpoint(endpoint, "endpoint undeployed")
            for worker in self.registry.all(endpoint):
                if worker.managed:
                    self._never_ran(worker, "endpoint undeployed")
            self.provisioner.release_image(endpoint)  # its image may be evicted now

    def prepull(self, spec: EndpointSpec) -> None:
        """Deploying an image endpoint that keeps workers up (`active_workers` > 0) starts
        getting its image now, so that its first workers start with the image on the host
        (their `image_pull` phase is 0) instead of each waiting in its cold start. Returns at
        once; the scheduler starts none of its workers until the pull ends (or fails: then
        the first worker tries, and says why)."""
        if spec.worker.image and spec.scaling.active_workers >= 1:
            self.provisioner.prepull(spec)

    async def restart_endpoint(self, endpoint: str, reason: str) -> None:
        await self.provisioner.stop_endpoint(endpoint, reason)

    async def drain(self) -> None:
        """Waits for the stops in flight (shutdown)."""
        await asyncio.gather(*self._stopping, return_exceptions=True)
