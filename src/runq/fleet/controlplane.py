"""The control plane's operations: what clients and workers can ask, over store and fleet.

The API layer is a thin HTTP skin over this class. Every state change goes through the store
first; wake-ups (signals) and side effects (webhooks, stops, kills) follow the commit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from runq.core.config import ServerConfig
from runq.core.idempotency import IdempotencyKey, Submission
from runq.core.job import Job, JobRequest, JobStatus, parse_worker_result
from runq.core.spec import EndpointSpec, loads_spec
from runq.core.spec_edit import set_workers
from runq.core.worker import Worker, WorkerState
from runq.errors import DiskFull, SpecError
from runq.fleet import lifecycle
from runq.fleet.containers import require_engine
from runq.fleet.demand import DemandHistory
from runq.fleet.diskguard import DiskGuard
from runq.fleet.job_timing import JobTimings
from runq.fleet.lb import HOLD_LIMIT_S, LoadBalancer
from runq.fleet.ledger import Ledger
from runq.fleet.local import kill_leftovers
from runq.fleet.provisioner import make_provisioner
from runq.fleet.reaper import Reaper
from runq.fleet.registry import WorkerRegistry
from runq.fleet.replicas import Replication, runs_differently
from runq.fleet.scheduler import Scheduler
from runq.fleet.signals import Signals, wait_any
from runq.fleet.undeploy import Undeployer
from runq.fleet.webhooks import WebhookSender
from runq.fleet.worker_logs import prune_logs
from runq.policy.retry import LostJobAction, decide_lost_job
from runq.store.base import JobStore, SharedStore, StreamRead
from runq.store.diskfull import is_disk_full

log = logging.getLogger("runq")

Clock = Callable[[], float]
T = TypeVar("T")


DRAIN_POLL_S = 0.05
LOG_PRUNE_EVERY_S = 60.0
# On a shared store each wait re-reads its own job this often, in case the sweep over waited
# jobs (runq.fleet.job_watch) failed.
WAIT_RECHECK_S = 30.0
_SERVING = frozenset({WorkerState.IDLE, WorkerState.RUNNING, WorkerState.INITIALIZING})
_TAKES_NOTHING = frozenset({WorkerState.PARKED, WorkerState.UNHEALTHY, WorkerState.TERMINATED})


class ControlPlane:
    def __init__(
        self, config: ServerConfig, store: JobStore, webhook_secret: str, clock: Clock = time.time
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.signals = Signals()
        self.registry = WorkerRegistry(clock)
        self.provisioner = make_provisioner(config, self.registry, self._worker_exited, store)
        self.webhooks = WebhookSender(config, store, webhook_secret, clock)
        self.reaper = Reaper(self)
        self.scheduler = Scheduler(self)
        self.undeploys = Undeployer(self)
        self.ledger = Ledger(config.prices, self.registry.history)
        self.demand = DemandHistory()  # recent arrivals and executions, for the scalers
        self.timings = JobTimings()  # delay and execution histograms for /metrics
        self.lb = LoadBalancer(self.registry, clock)
        self.lb_hold_s = HOLD_LIMIT_S
        self.specs: dict[str, EndpointSpec] = {}
        self.draining = False
        self.leading = True  # runs the fleet (False: a standby replica on a shared store)
        self.replication: Replication | None = None  # with a store shared by replicas
        self._shared = isinstance(store, SharedStore)
        self._tasks: list[asyncio.Task[None]] = []
        self.disk = DiskGuard(config.data_dir, config.min_free_bytes)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self, specs: list[EndpointSpec]) -> None:
        kill_leftovers(self.config.data_dir)
        self.disk.check()
        await self.store.open()
        await self.load_stored_specs()
        for spec in specs:
            await self._remember(spec)
        guard = asyncio.create_task(self.disk.run(self.config.tick_s), name="runq-disk")
        if not isinstance(self.store, SharedStore):
            self._tasks += [guard, asyncio.create_task(self._prune_logs(), name="runq-logs")]
            await self.lead()
            return
        # A store shared by replicas: only the holder of the scheduler lock runs the fleet;
        # until then this replica serves the client API from the store.
        self.leading = False
        self.replication = Replication(self, self.store)
        self._tasks = [guard, *self.replication.start()]

    async def _prune_logs(self) -> None:
        """Ended workers' logs go after `log_retention`, oldest first past `logs_max`."""
        config = self.config
        while True:
            live = {w.id for w in self.registry.all()}
            await asyncio.to_thread(
                prune_logs,
                config.data_dir / "logs",
                self.clock(),
                config.log_retention_s,
                config.logs_max_bytes,
                live,
            )
            await asyncio.sleep(LOG_PRUNE_EVERY_S)

    async def load_stored_specs(self) -> None:
        """Serve every endpoint the store holds (deployed before a restart, or elsewhere)."""
        for name, path, toml in await self.store.endpoints():
            spec = _parse_stored(name, path, toml)
            if spec is not None:
                self.specs[name] = spec

    async def load_stored_spec(self, name: str) -> EndpointSpec | None:
        """One endpoint as the store holds it; None when gone or unreadable (logged)."""
        for stored, path, toml in await self.store.endpoints():
            if stored == name:
                return _parse_stored(name, path, toml)
        return None

    async def lead(self) -> None:
        """Run the fleet: workers, scheduler, reaper, webhooks."""
        await self._adopt_running_jobs()
        connect = getattr(self.provisioner, "connect", None)
        if connect is not None:  # joining a cluster takes seconds: not on the loop
            await asyncio.to_thread(connect)
        load_index = getattr(self.provisioner, "load_index", None)
        if load_index is not None:  # which node caches which model, as the store knows it
            await load_index()
        self.scheduler.start()
        self._tasks += [
            asyncio.create_task(self.scheduler.run(), name="runq-scheduler"),
            asyncio.create_task(
                self.lb.run_health_checks(self._balanced_endpoints), name="runq-health"
            ),
            asyncio.create_task(self.reaper.run(), name="runq-reaper"),
            asyncio.create_task(self.webhooks.run(), name="runq-webhooks"),
        ]
        self.leading = True

    async def drain(self, grace_s: float) -> int:
        """Graceful shutdown, first half: no job is handed out any more (queued ones stay
        queued, durable, for the next start); running jobs get `grace_s` to finish while the
        API still takes their results; what still runs then goes back to the queue. Returns
        how many jobs were requeued."""
        self.draining = True
        if not self.leading:
            return 0  # a standby: the running jobs are the leader's
        for name in self.specs:
            self.signals.work_available(name)  # held job-take polls answer empty now
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        running = await self.store.running()
        if running:
            log.info("draining: %d running job(s) get up to %gs to finish", len(running), grace_s)
        while running and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
            running = await self.store.running()
        for job in running:
            if job.worker_id is not None and await self.store.requeue(job.id, job.worker_id):
                log.warning("job %s still running at shutdown: back in the queue", job.id)
        return len(running)

    async def stop(self) -> None:
        self.draining = True
        self.signals.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.scheduler.drain()
        await self.undeploys.close()
        await self.provisioner.shutdown()
        await self.lb.close()
        if self.replication is not None:
            await self.replication.close()
        await self.store.close()

    async def deploy(self, spec: EndpointSpec, text: str | None = None) -> None:
        """Serve `spec`, replacing an endpoint of that name: workers that would run differently
        are replaced by a rolling redeploy (runq.fleet.reshape); scaling changes apply at once."""
        require_engine(spec, self.config)  # an image endpoint needs a container engine here
        old = self.specs.get(spec.name)
        await self._remember(spec, text)
        self.undeploys.deployed_again(spec.name)
        if old is not None and runs_differently(old, spec):
            await self.replace_workers(old, spec)
        self.scheduler.poke()

    async def replace_workers(self, old: EndpointSpec, new: EndpointSpec) -> None:
        """The endpoint's workers run `old`: roll them to `new`. A preloaded model's workers are
        forked from a template of the old code, so they all restart at once instead."""
        preload = any(s.model is not None and s.model.preload for s in (old, new))
        if preload:
            await self.provisioner.stop_endpoint(new.name, "endpoint redeployed")
        else:
            self.scheduler.reshaper.begin_roll(new.name)

    async def undeploy(self, endpoint: str, drain: bool = False) -> dict[str, Any]:
        """Stop serving an endpoint (runq.fleet.undeploy); kept across restarts."""
        return await self.undeploys.undeploy(endpoint, drain)

    async def set_workers(self, endpoint: str, active: int, maximum: int) -> EndpointSpec:
        """Change an endpoint's active and max workers without restarting its workers: the
        stored endpoint file is edited (so a restart serves the new values) and the scheduler
        scales to them on its next tick.

        Raises:
            NotFound: the endpoint is not deployed.
            SpecError: 0 <= active <= max and max >= 1 do not hold, or the file's [scaling]
                cannot be edited in place.
        """
        old = self.spec(endpoint)
        stored = {name: (path, toml) for name, path, toml in await self.store.endpoints()}
        path, text = stored.get(endpoint, (str(old.source_path or ""), ""))
        edited = set_workers(text, active, maximum)
        spec = loads_spec(edited, Path(path))
        await self.store.save_endpoint(endpoint, path, edited)
        self.specs[endpoint] = spec
        self.scheduler.poke()
        return spec

    async def _remember(self, spec: EndpointSpec, text: str | None = None) -> None:
        """Store the endpoint file (its text as given, else as on this machine's disk) so a
        restart serves it again. An inline deploy may name a path this machine lacks."""
        path = spec.source_path
        if text is None:
            text = path.read_text(encoding="utf-8") if path is not None else ""
        await self.store.save_endpoint(spec.name, str(path or ""), text)
        self.specs[spec.name] = spec

    async def _adopt_running_jobs(self) -> None:
        """Jobs running when the last control plane died belong to workers we do not know.
        Remote ones may ping again; until then they count as silent since now."""
        for job in await self.store.running():
            if job.worker_id and self.registry.get(job.worker_id) is None:
                worker = self.registry.register(
                    job.endpoint, job.worker_id, token=secrets.token_urlsafe(24), managed=False
                )
                worker.last_seen = self.clock()
            holder = self.registry.get(job.worker_id) if job.worker_id else None
            if holder is not None:
                self.registry.took(holder, [job.id])

    def _balanced_endpoints(self) -> set[str]:
        return {name for name, spec in self.specs.items() if spec.type == "load_balancer"}

    @property
    def _wait_slice_s(self) -> float:
        """How long a client's wait goes without re-reading its job. Alone on its store: no
        limit, every change wakes it. Replicas share the store, and a change made through
        another replica sets no event here: one sweep (runq.fleet.job_watch) re-reads all
        waited jobs every 0.2 s and wakes the waiters of those that changed, so a wait re-reads
        on its own only as a fallback (each wait re-reading its job every 0.2 s was 5,000
        reads a second for 1,000 waiters)."""
        return WAIT_RECHECK_S if self._shared else math.inf

    def spec(self, endpoint: str) -> EndpointSpec:
        spec = self.specs.get(endpoint)
        if spec is None:
            raise self.undeploys.not_served(endpoint)
        return spec

    # --- clients ------------------------------------------------------------------------
    async def submit(self, request: JobRequest) -> Job:
        """Queue a job; QueueFull (nothing stored) while the endpoint's max_queue jobs wait,
        Gone while the endpoint drains before it is undeployed."""
        self.undeploys.check_open(request.endpoint)
        spec = self.specs.get(request.endpoint)
        job = await self._guarded(self.store.enqueue(request, spec.jobs.max_queue if spec else 0))
        self._arrived(job)
        return job

    async def submit_once(self, request: JobRequest, key: IdempotencyKey) -> Submission:
        """`submit` under an Idempotency-Key: the job the key names if it was seen in the last
        24 h (nothing queued), else a new one (`JobStore.enqueue_once`)."""
        self.undeploys.check_open(request.endpoint)
        spec = self.specs.get(request.endpoint)
        submission = await self._guarded(
            self.store.enqueue_once(request, key, spec.jobs.max_queue if spec else 0)
        )
        if not submission.replayed and submission.job is not None:
            self._arrived(submission.job)
        return submission

    async def _guarded(self, enqueue: Awaitable[T]) -> T:
        """Runs an enqueue unless the data disk is full: what is accepted must be recordable
        to its end (DiskFull, HTTP 507, also when the write itself finds no room)."""
        if self.disk.full:
            if inspect.iscoroutine(enqueue):
                enqueue.close()
            raise DiskFull(self.disk.message)
        try:
            return await enqueue
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self.disk.note_error(exc)
            raise DiskFull(self.disk.message) from exc

    def _arrived(self, job: Job) -> None:
        self.demand.arrived(job)
        self.signals.job_queued(job.endpoint)
        if not any(w.state in _SERVING for w in self.registry.all(job.endpoint)):
            # Nobody will take it: start or revive a worker now, not at the next tick. (Not
            # on every submit: a tick per job would cost more than the job.)
            self.scheduler.poke()

    async def wait_for(
        self,
        job_id: str,
        timeout: float,
        done: Callable[[Job], bool] = lambda j: j.status.is_terminal,
    ) -> Job | None:
        """The job once `done(job)` holds, or as it is when `timeout` runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            gate = self.signals.job_gate(job_id)
            try:
                job = await self.store.get(job_id)
                remaining = deadline - loop.time()
                if job is None or done(job) or remaining <= 0 or self.signals.closed.is_set():
                    return job
                await wait_any(min(remaining, self._wait_slice_s), gate.event, self.signals.closed)
            finally:
                self.signals.release(job_id, gate)

    async def read_stream(self, job_id: str, wait: float) -> StreamRead | None:
        """Chunks since the last read; waits up to `wait` for a first chunk or the end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            gate = self.signals.job_gate(job_id)
            try:
                read = await self.store.read_stream(job_id)
                remaining = deadline - loop.time()
                if read is None or read.chunks or read.job.status.is_terminal or remaining <= 0:
                    return read
                await wait_any(min(remaining, self._wait_slice_s), gate.event, self.signals.closed)
                if self.signals.closed.is_set():
                    return await self.store.read_stream(job_id)
            finally:
                self.signals.release(job_id, gate)

    async def cancel(self, job_id: str) -> Job | None:
        job, worker_id = await self.store.cancel(job_id)
        if job is not None:
            self.signals.job_changed(job_id)
            if worker_id is not None:
                self.stop_on_worker(worker_id, job_id)
        return job

    async def retry(self, job_id: str) -> Job | None:
        job = await self.store.retry(job_id)
        if job is not None:
            self.signals.job_queued(job.endpoint)
            self.signals.job_changed(job_id)
        return job

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
        return max(0.0, typical - (self.clock() - min(w.started_at for w in starting)))

    async def health(self, endpoint: str) -> dict[str, Any]:
        counts = await self.store.counts(endpoint)
        return {
            "jobs": {
                "completed": counts[JobStatus.COMPLETED],
                "failed": counts[JobStatus.FAILED] + counts[JobStatus.TIMED_OUT],
                "inProgress": counts[JobStatus.IN_PROGRESS],
                "inQueue": counts[JobStatus.IN_QUEUE],
                "retried": counts["retried"],
            },
            "workers": self.registry.counts(endpoint),
        }

    # --- workers ------------------------------------------------------------------------
    async def take(self, worker: Worker, limit: int, job_in_progress: bool) -> list[Job]:
        """Long-poll: jobs for `worker`, or [] after the hold time or on shutdown."""
        self.registry.seen(worker)
        if not job_in_progress and worker.jobs:
            # It says it holds nothing, yet we handed it jobs it never reported on: their
            # results were lost (a crash, or a job-done that failed). Spec 2.5.
            await self._lose_jobs(worker, "the worker lost the job before reporting a result")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.take_hold_s
        while True:
            if self._closed_to(worker):
                return []
            ticket = self.signals.ticket(worker.endpoint)
            acted = False  # woken, and about to read the queue again
            try:
                jobs = await self._take_now(worker, limit)
                if jobs:
                    return jobs
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                await wait_any(remaining, ticket, self.signals.closed)
                acted = ticket.is_set() and not self._closed_to(worker)
            finally:
                self.signals.leave(worker.endpoint, ticket, acted)

    def _closed_to(self, worker: Worker) -> bool:
        """No more jobs for this worker: runq or the worker is shutting down, or it is parked
        (frozen: a job handed to it would wait until revival) or unhealthy."""
        return (
            self.draining
            or worker.draining
            or worker.state in _TAKES_NOTHING
            or self.signals.closed.is_set()
        )

    async def _take_now(self, worker: Worker, limit: int) -> list[Job]:
        jobs = await self.store.take(worker.endpoint, worker.id, limit)
        if jobs:
            self._handed(worker, jobs)
        return jobs

    def _handed(self, worker: Worker, jobs: list[Job]) -> None:
        self.registry.took(worker, [job.id for job in jobs])
        self.timings.started(jobs)
        for job in jobs:
            self.signals.job_changed(job.id)

    async def wait_stops(self, worker: Worker) -> list[str]:
        self.registry.seen(worker)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.take_hold_s
        while True:
            stops = self.signals.pop_stops(worker.id)
            remaining = deadline - loop.time()
            if stops or remaining <= 0 or self.signals.closed.is_set() or worker.draining:
                return stops
            await wait_any(remaining, self.signals.stop_event(worker.id), self.signals.closed)

    async def report(self, worker: Worker, job_id: str, body: Any, take: int = 0) -> list[Job]:
        """A job-done body: progress or a final result. Duplicates and late reports are no-ops.

        With `take` > 0 (runq's worker), a final result also hands the worker up to `take`
        queued jobs at once, without holding: one round trip per job instead of two. A
        duplicate report gets none, so a retried post cannot take twice.
        """
        self.registry.seen(worker)
        result = parse_worker_result(body)
        if result.is_progress:
            if await self.store.progress(job_id, worker.id, result.output):
                self.signals.job_changed(job_id)
            return []
        take = 0 if result.stop_pod or self._closed_to(worker) else take
        outcome = await self.store.finish(job_id, worker.id, result, then_take=take)
        self.registry.released(worker.id, job_id)
        if outcome.applied and outcome.job is not None:
            self.job_ended(outcome.job)
        if outcome.taken:
            self._handed(worker, outcome.taken)
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
            *(self.store.finish(job_id, worker.id, result) for job_id, result in parsed)
        )
        for (job_id, _), outcome in zip(parsed, outcomes, strict=True):
            self.registry.released(worker.id, job_id)
            if outcome.applied and outcome.job is not None:
                self.job_ended(outcome.job)
        if any(result.stop_pod for _, result in parsed):
            self.recycle(worker)
            return []
        if take <= 0 or not any(o.applied for o in outcomes) or self._closed_to(worker):
            return []
        return await self._take_now(worker, take)

    async def fail_oversized(self, worker: Worker, job_id: str, error: str) -> None:
        job = await self.store.fail(job_id, worker.id, error)
        self.registry.released(worker.id, job_id)
        if job is not None:
            self.job_ended(job)

    async def purge(self, endpoint: str) -> int:
        """Cancel every queued job of `endpoint`; their waiters (/runsync, status-sync, stream)
        answer CANCELLED at once. Returns how many."""
        purged = await self.store.purge_queue(endpoint)
        for job in purged:
            self.job_ended(job)
        return len(purged)

    def job_ended(self, job: Job) -> None:
        """After the store ended a job (a result, a failure, a timeout): wake its waiters,
        record its times for /metrics and the scalers, and send its webhook."""
        self.signals.job_changed(job.id)
        self.timings.finished(job)
        self.demand.finished(job)
        if job.webhook:
            self.webhooks.poke()

    async def stream_chunk(self, worker: Worker, job_id: str, chunk: Any) -> None:
        self.registry.seen(worker)
        if await self.store.append_stream(job_id, worker.id, chunk):
            self.signals.job_changed(job_id)

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
        await self.reaper.reconcile_ping(worker)

    def recycle(self, worker: Worker) -> None:
        """Replace a worker with a fresh process (stopPod, or a stuck job)."""
        worker.draining = True
        self.signals.forget_worker(worker.id)
        if not self.provisioner.kill(worker.id, "recycled"):
            log.info("worker %s asked to be recycled but runq did not start it", worker.id)

    def stop_on_worker(self, worker_id: str, job_id: str) -> None:
        """Tell a worker to stop a job; kill it if it still runs the job after the grace."""
        self.signals.stop_job(worker_id, job_id)
        self.reaper.watch_stop(worker_id, job_id)

    # --- lost work ----------------------------------------------------------------------
    async def _worker_exited(self, worker: Worker, code: int, expected: bool) -> None:
        self.signals.forget_worker(worker.id)
        await self._lose_jobs(worker, f"worker {worker.id} exited with code {code}")
        self.scheduler.worker_exited(worker, expected)

    async def _lose_jobs(self, worker: Worker, cause: str) -> None:
        held = [
            job for job in await self.store.running(worker.endpoint) if job.worker_id == worker.id
        ]
        worker.jobs.clear()
        for job in held:
            await self.lose_job(job, cause)

    async def lose_job(self, job: Job, cause: str) -> None:
        """Requeue or fail a running job whose worker let it go (policy decides)."""
        spec = self.specs.get(job.endpoint)
        max_retries = spec.jobs.max_retries if spec is not None else 0
        decision = decide_lost_job(job.retries, max_retries, cause)
        if job.worker_id is None:
            return
        if decision.action is LostJobAction.REQUEUE:
            if await self.store.requeue(job.id, job.worker_id) is not None:
                log.info("job %s requeued: %s", job.id, cause)
                self.signals.job_queued(job.endpoint)
        elif (failed := await self.store.fail(job.id, job.worker_id, decision.reason)) is not None:
            log.warning("job %s failed: %s", job.id, decision.reason)
            self.job_ended(failed)
        self.registry.released(job.worker_id, job.id)
        self.signals.job_changed(job.id)


def _parse_stored(name: str, path: str, toml: str) -> EndpointSpec | None:
    try:
        return loads_spec(toml, Path(path))
    except SpecError as exc:
        log.error("not serving stored endpoint %s: %s", name, exc)
        return None
