"""The composition root: builds the control plane's services, wires them, starts and stops them.

Nothing else constructs a service or holds them all. Each service gets only what it uses:

    Endpoints  the served specs            <- the store's endpoint files
    Jobs       every job state change      <- store, endpoints, signals, disk guard
    Fleet      every worker state change   <- registry, provisioner, signals, jobs
    Scheduler  scaling and placement       <- endpoints, jobs, fleet, load balancer
    Reaper     timeouts, TTLs, retention   <- jobs, fleet's sweep
    Deployments deploy, scale, undeploy    <- endpoints, fleet, scheduler's roll and poke

The HTTP layer (runq.server.app) hands each route the services it needs, never this object.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from runq.core.config import ServerConfig
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.fleet.deploys import Deployments
from runq.fleet.diskguard import DiskGuard
from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.jobs import Jobs
from runq.fleet.lb import LoadBalancer
from runq.fleet.ledger import Ledger
from runq.fleet.local import kill_leftovers
from runq.fleet.provisioner import ExitHandler, Provisioner
from runq.fleet.reaper import Reaper
from runq.fleet.registry import WorkerRegistry
from runq.fleet.replicas import Replication
from runq.fleet.scheduler import Scheduler
from runq.fleet.signals import Signals
from runq.fleet.undeploy import Undeployer
from runq.fleet.webhooks import WebhookSender
from runq.fleet.worker_logs import prune_logs
from runq.store.base import JobStore, SharedStore

log = logging.getLogger("runq")

Clock = Callable[[], float]
ProvisionerFactory = Callable[[ServerConfig, WorkerRegistry, ExitHandler, JobStore], Provisioner]

DRAIN_POLL_S = 0.05
LOG_PRUNE_EVERY_S = 60.0
# On a shared store each wait re-reads its own job this often, in case the sweep over waited
# jobs (runq.fleet.job_watch) failed.
WAIT_RECHECK_S = 30.0


def make_provisioner(
    config: ServerConfig, registry: WorkerRegistry, on_exit: ExitHandler, store: JobStore
) -> Provisioner:
    """Ray when the config names a cluster, else worker processes on this machine."""
    if config.ray_address:
        from runq.fleet.ray import RayProvisioner  # Ray is imported only when a cluster is used

        return RayProvisioner(config, registry, on_exit, config.ray_address, store)
    from runq.fleet.local import LocalProvisioner

    return LocalProvisioner(config, registry, on_exit)


class Services:
    def __init__(
        self,
        config: ServerConfig,
        store: JobStore,
        webhook_secret: str,
        clock: Clock = time.time,
        provisioner: ProvisionerFactory = make_provisioner,
    ) -> None:
        """`provisioner` makes what starts workers: processes or Ray actors by the config;
        tests pass a fake that starts nothing (tests/fleet/fakes.py)."""
        self.config = config
        self.store = store
        self.clock = clock
        self.signals = Signals()
        self.disk = DiskGuard(config.data_dir, config.min_free_bytes)
        self.registry = WorkerRegistry(clock)
        self.ledger = Ledger(config.prices, self.registry.history)
        self.endpoints = Endpoints(store)
        self.webhooks = WebhookSender(config, store, webhook_secret, clock)
        self.jobs = Jobs(
            store,
            self.endpoints,
            self.signals,
            self.disk,
            clock,
            webhook_due=self.webhooks.poke,
            wait_slice_s=self._wait_slice_s,
        )

        async def worker_exited(worker: Worker, code: int, expected: bool, why: str) -> None:
            await self.fleet.worker_exited(worker, code, expected, why)  # made below

        self.fleet = Fleet(
            config,
            clock,
            self.registry,
            provisioner(config, self.registry, worker_exited, store),
            self.signals,
            self.jobs,
        )
        self.lb = LoadBalancer(self.registry, clock)
        self.scheduler = Scheduler(config, clock, self.endpoints, self.jobs, self.fleet, self.lb)
        self.reaper = Reaper(self.jobs, self.fleet, clock, config.tick_s)
        self.undeployer = Undeployer(
            self.endpoints,
            self.jobs,
            self.fleet,
            self.lb,
            leading=lambda: self.leading,
            forget_roll=self.scheduler.reshaper.forget,
        )
        self.deployments = Deployments(
            config,
            self.endpoints,
            self.fleet,
            self.undeployer,
            begin_roll=self.scheduler.reshaper.begin_roll,
            poke=self.scheduler.poke,
            leading=lambda: self.leading,
        )
        # The hooks between services, each one way.
        self.jobs.on_arrival = self.fleet.job_arrived
        self.jobs.on_running_cancelled = self.fleet.stop_on_worker
        self.fleet.scheduler_poke = self.scheduler.poke
        self.fleet.on_worker_exit = self.scheduler.worker_exited
        self.leading = True  # runs the fleet (False: a standby replica on a shared store)
        self.replication: Replication | None = None  # with a store shared by replicas
        self._tasks: list[asyncio.Task[None]] = []

    def _wait_slice_s(self) -> float:
        """How long a client's wait goes without re-reading its job. Alone on its store: no
        limit, every change wakes it. Replicas share the store, and a change made through
        another replica sets no event here: one sweep (runq.fleet.job_watch) re-reads all
        waited jobs every 0.2 s and wakes the waiters of those that changed, so a wait re-reads
        on its own only as a fallback (each wait re-reading its job every 0.2 s was 5,000
        reads a second for 1,000 waiters)."""
        return WAIT_RECHECK_S if isinstance(self.store, SharedStore) else math.inf

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self, specs: list[EndpointSpec]) -> None:
        kill_leftovers(self.config.data_dir)
        self.disk.check()
        await self.store.open()
        await self.endpoints.load_stored()
        for spec in specs:
            await self.endpoints.remember(spec)
        guard = asyncio.create_task(self.disk.run(self.config.tick_s), name="runq-disk")
        if not isinstance(self.store, SharedStore):
            self._tasks += [guard, asyncio.create_task(self._prune_logs(), name="runq-logs")]
            await self.lead()
            return
        # A store shared by replicas: only the holder of the scheduler lock runs the fleet;
        # until then this replica serves the client API from the store.
        self.leading = False
        self.replication = Replication(
            self.store,
            self.signals,
            self.config.base_url,
            self.clock,
            lead=self._take_over,
            reload=self.deployments.reload,
            stop_if_mine=self._stop_if_mine,
        )
        self._tasks = [guard, *self.replication.start()]

    async def _take_over(self) -> None:
        """This replica got the scheduler lock. A deploy hint missed while the listener
        reconnected is caught up first."""
        await self.endpoints.load_stored()
        await self.lead()

    def _stop_if_mine(self, worker_id: str, job_id: str) -> None:
        """A job cancelled through another replica: tell its worker, if it is one of ours."""
        if self.fleet.worker(worker_id) is not None:
            self.fleet.stop_on_worker(worker_id, job_id)

    async def _prune_logs(self) -> None:
        """Ended workers' logs go after `log_retention`, oldest first past `logs_max`."""
        config = self.config
        while True:
            live = {w.id for w in self.fleet.workers()}
            await asyncio.to_thread(
                prune_logs,
                config.data_dir / "logs",
                self.clock(),
                config.log_retention_s,
                config.logs_max_bytes,
                live,
            )
            await asyncio.sleep(LOG_PRUNE_EVERY_S)

    async def lead(self) -> None:
        """Run the fleet: workers, scheduler, reaper, webhooks."""
        await self.fleet.adopt_running_jobs()
        provisioner = self.fleet.provisioner
        await asyncio.to_thread(provisioner.connect)  # joining a cluster takes seconds
        await provisioner.load_index()  # which node caches which model, as the store knows it
        self.scheduler.start()
        self._tasks += [
            asyncio.create_task(self.scheduler.run(), name="runq-scheduler"),
            asyncio.create_task(
                self.lb.run_health_checks(self.endpoints.balanced), name="runq-health"
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
        self.fleet.draining = True
        if not self.leading:
            return 0  # a standby: the running jobs are the leader's
        for name in self.endpoints.names():
            self.signals.work_available(name)  # held job-take polls answer empty now
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        running = await self.jobs.running()
        if running:
            log.info("draining: %d running job(s) get up to %gs to finish", len(running), grace_s)
        while running and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
            running = await self.jobs.running()
        for job in running:
            if job.worker_id is not None and await self.jobs.requeue(job.id, job.worker_id):
                log.warning("job %s still running at shutdown: back in the queue", job.id)
        return len(running)

    def close_now(self) -> None:
        """Stop handing out jobs and end every wait (a signal, maybe a second one)."""
        self.fleet.draining = True
        self.signals.close()

    async def stop(self) -> None:
        self.close_now()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.fleet.drain()
        await self.undeployer.close()
        await self.fleet.provisioner.shutdown()
        await self.lb.close()
        if self.replication is not None:
            await self.replication.close()
        await self.store.close()
