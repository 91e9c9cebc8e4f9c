"""The scheduler loop: each tick, per endpoint, snapshot -> policy -> fleet actions.

Policy decides (runq.policy.scaling and .placement, pure); this module only reads state, calls
them with `now`, and carries out the plan through the provisioner: start, revive, park, stop.
It also owns what needs a clock and a process: init timeouts, crash-loop back-off, and eviction
of parked workers whose GPUs another endpoint needs. A submit pokes it, so that a parked worker
is revived (or a first worker started) without waiting for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from runq.core.config import ServerConfig
from runq.core.hosts import Host
from runq.core.image_ref import locality_key
from runq.core.spec import EndpointSpec
from runq.core.worker import Placement, Worker, WorkerState
from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.jobs import Jobs
from runq.fleet.lb import LoadBalancer
from runq.fleet.machine import effective_hosts
from runq.fleet.reshape import Reshaper
from runq.policy import placement as placement_policy
from runq.policy.scaling import LIVE, ScalingSnapshot, WorkerView, plan, still_applicable
from runq.store.base import QueueStats

log = logging.getLogger("runq.fleet")

PARK_RETENTION_S = 600.0  # a parked worker is stopped after this long without demand
SPREAD_FROM = 5  # endpoints with at least this many max workers spread over GPU priorities
HEALTHY_RUN_S = 30.0  # a worker that lived this long was not crash looping
MAX_BACKOFF_S = 30.0
HOSTS_REFRESH_S = 2.0
Clock = Callable[[], float]  # a cluster provisioner's nodes are re-read this often


def init_timeout_s(spec: EndpointSpec) -> float:
    """The endpoint's init_timeout, unless RUNPOD_INIT_TIMEOUT in the worker env overrides it."""
    raw = spec.worker.env.get("RUNPOD_INIT_TIMEOUT", "")
    try:
        return float(raw) if raw else spec.scaling.init_timeout_s
    except ValueError:
        return spec.scaling.init_timeout_s


def with_cached_models(
    host: Host, hosts: tuple[Host, ...], cached: tuple[str, ...], images: tuple[str, ...] = ()
) -> Host:
    """`host` with this machine's model cache added to its models, and the container images
    this machine holds to its images, when it is this machine: the only host, or the one named
    "local" (as detected when runq.toml declares no hosts)."""
    if not (cached or images) or (len(hosts) > 1 and host.name != "local"):
        return host
    return dataclasses.replace(
        host,
        models=tuple(dict.fromkeys((*host.models, *cached))),
        images=tuple(dict.fromkeys((*host.images, *images))),
    )


def image_key(spec: EndpointSpec) -> str:
    """What placement looks for among a host's images: the endpoint's reference, "" for a
    process worker or an image built from its folder (built on this machine only)."""
    if not spec.worker.image or spec.worker.container.build:
        return ""
    return locality_key(spec.worker.image)


@dataclass
class _Usage:
    """What placed workers hold: GPU indices and CPU slots by host, placements by endpoint and
    GPU category (placement spreads an endpoint over categories), and this machine's cached
    models and container images."""

    gpus: dict[str, set[int]]
    cpu: dict[str, int]
    by_category: dict[str, dict[str, int]] = field(default_factory=dict)
    cached: tuple[str, ...] = ()
    images: tuple[str, ...] = ()

    def add(self, endpoint: str, where: Placement) -> None:
        if where.host not in self.gpus:
            return  # a host that left the cluster
        self.gpus[where.host].update(where.gpu_indices)
        self.cpu[where.host] += 0 if where.gpu_indices else 1
        mine = self.by_category.setdefault(endpoint, {})
        mine[where.category] = mine.get(where.category, 0) + 1


class Scheduler:
    def __init__(
        self,
        config: ServerConfig,
        clock: Clock,
        endpoints: Endpoints,
        jobs: Jobs,
        fleet: Fleet,
        lb: LoadBalancer,
    ) -> None:
        self._config = config
        self._clock = clock
        self._endpoints = endpoints
        self._jobs = jobs
        self._fleet = fleet
        self._lb = lb
        self.hosts: tuple[Host, ...] = ()
        self._wake = asyncio.Event()
        self._failures: dict[str, int] = {}  # endpoint -> crash exits in a row
        self._hold_until: dict[str, float] = {}  # endpoint -> no new worker before this
        self._hosts_due = 0.0
        self._clustered = False  # a cluster provisioner's nodes change: see _refresh_hosts
        # Resizes and rolling redeploys (runq.fleet.reshape), applied after each scaling plan.
        self.reshaper = Reshaper(fleet, lb, clock, self._start_new)
        self._tick_usage: _Usage | None = None  # placements, counted once per tick

    def start(self) -> None:
        # A cluster provisioner (Ray) knows its nodes; else the config's or this machine's.
        nodes = self._fleet.provisioner.hosts()
        self._clustered = nodes is not None
        self.hosts = nodes if nodes is not None else effective_hosts(self._config)

    def poke(self) -> None:
        """Demand changed (a submit): decide now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # one bad tick must not stop scaling
                log.exception("scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.tick_s):
                    await self._wake.wait()

    async def tick(self) -> None:
        if self._fleet.draining:
            return  # shutting down: start, park or stop nothing more
        await self._refresh_hosts()
        self._tick_usage = None
        specs = self._endpoints.all()
        # Every queue endpoint's stats in one store round trip, not one per endpoint.
        names = [spec.name for spec in specs if spec.type != "load_balancer"]
        stats = await self._jobs.queue_stats_many(names)
        for name, read in stats.items():
            # A queued job wakes one held poll; one lost in a race waits at most this tick.
            self._fleet.wake_takes(name, read.in_queue)
        try:
            for spec in specs:
                self._scale(spec, stats.get(spec.name))
        finally:
            self._tick_usage = None

    async def _refresh_hosts(self) -> None:
        """A cluster's nodes come and go: re-read them every HOSTS_REFRESH_S."""
        now = asyncio.get_running_loop().time()
        if now < self._hosts_due or not self._clustered:
            return
        self._hosts_due = now + HOSTS_REFRESH_S
        try:
            nodes = await asyncio.to_thread(self._fleet.provisioner.hosts)
            self.hosts = nodes if nodes is not None else self.hosts
        except Exception:  # the cluster is briefly unreachable: keep the last known nodes
            log.exception("could not list the cluster's nodes")

    # --- one endpoint -------------------------------------------------------------------
    def _scale(self, spec: EndpointSpec, stats: QueueStats | None) -> None:
        fleet = self._fleet
        now = self._clock()
        workers = [w for w in fleet.workers(spec.name) if w.managed]
        limit = init_timeout_s(spec)
        for worker in workers:
            if worker.state == WorkerState.INITIALIZING and now - worker.started_at > limit:
                fleet.mark_unhealthy(worker, f"cold start passed init_timeout of {limit:g}s")
        self._place_throttled(spec, workers)
        # A draining worker is on its way out: it is no capacity to plan with.
        views = tuple(
            WorkerView(w.id, w.state, w.since, w.active) for w in workers if not w.draining
        )
        if spec.type == "load_balancer":
            # Requests, not jobs: held ones wait for a worker, in-flight ones occupy one.
            load = self._lb.stats(spec.name)
            snapshot = ScalingSnapshot(now, load.held, load.in_flight, load.oldest_held_at, views)
        else:
            stats = stats or QueueStats(0, 0, None)  # deployed during this tick's read
            snapshot = ScalingSnapshot(
                now,
                stats.in_queue,
                stats.in_progress,
                stats.oldest_queued_at,
                views,
                recent_arrivals=self._jobs.demand.arrivals(spec.name),
                recent_execution_s=self._jobs.demand.executions(spec.name),
                cold_start_s=fleet.registry.typical_cold_start(spec.name),
            )
        decision = plan(snapshot, spec.scaling, PARK_RETENTION_S)
        # The store was awaited since the snapshot: act only on workers still as it saw them.
        now_states = {w.id: w.state for w in fleet.workers(spec.name)}
        decision = still_applicable(decision, views, now_states)
        by_id = {w.id: w for w in workers}
        live = [w for w in workers if w.state in LIVE]
        surplus = len(live) - decision.desired
        for worker in [w for w in live if w.state == WorkerState.THROTTLED][: max(surplus, 0)]:
            fleet.drop(worker, "no longer wanted (was waiting for a GPU)")
        for worker_id in decision.stop:
            if worker_id in by_id:
                fleet.stop(by_id[worker_id], "stopped: " + decision.reason)
        for worker_id in decision.park:
            if worker_id in by_id:
                fleet.park(by_id[worker_id])
        for worker_id in decision.revive:
            if worker_id in by_id:
                fleet.revive(by_id[worker_id], decision.reason)
        may_start = self._may_start(spec, now)
        if decision.start and may_start:
            for _ in range(decision.start):
                self._start_new(spec, decision.reason)
        self.reshaper.step(spec, snapshot.in_queue, may_start)

    def _may_start(self, spec: EndpointSpec, now: float) -> bool:
        """No new worker during the endpoint's crash-loop back-off, nor while its deploy gets
        its image (runq.fleet.images: the workers then start with the image here)."""
        if now < self._hold_until.get(spec.name, 0.0):
            return False
        return not self._fleet.provisioner.prepulling(spec.name)

    def _start_new(self, spec: EndpointSpec, reason: str) -> None:
        live_active = sum(
            1
            for w in self._fleet.workers(spec.name)
            if w.active and w.state not in (WorkerState.UNHEALTHY, WorkerState.TERMINATED)
        )
        worker = self._fleet.start(
            spec, self._place(spec), live_active < spec.scaling.active_workers, reason
        )
        if worker.state == WorkerState.THROTTLED:
            log.info("worker %s of %s throttled: no GPU free", worker.id, spec.name)

    def _place_throttled(self, spec: EndpointSpec, workers: list[Worker]) -> None:
        waiting = [w for w in workers if w.state == WorkerState.THROTTLED]
        for worker in waiting:
            where = self._place(spec)
            if where is None:
                self._evict_parked_for(spec)
                return
            self._fleet.start_throttled(spec, worker, where)

    def _usage(self) -> _Usage:
        """What the placed workers hold, counted once per tick and kept up to date as this
        tick places more: a pass over the fleet per start made scaling up N workers cost N
        passes (seconds of a blocked loop for a thousand)."""
        if self._tick_usage is not None:
            return self._tick_usage
        usage = _Usage(
            {host.name: set() for host in self.hosts},
            dict.fromkeys((host.name for host in self.hosts), 0),
        )
        for worker in self._fleet.workers():
            if worker.placement is not None and worker.state != WorkerState.THROTTLED:
                usage.add(worker.endpoint, worker.placement)
        # This machine's cache (a few small files); a cluster provisioner puts each node's
        # models in its hosts instead.
        provisioner = self._fleet.provisioner
        usage.cached = () if self._clustered else provisioner.models.sources()
        if not self._clustered:
            usage.images = provisioner.images_held()  # this machine's image index, a small file
        self._tick_usage = usage
        return usage

    def _place(self, spec: EndpointSpec) -> Placement | None:
        usage = self._usage()
        hosts = [
            placement_policy.HostUsage(
                with_cached_models(host, self.hosts, usage.cached, usage.images),
                frozenset(usage.gpus[host.name]),
                usage.cpu[host.name],
            )
            for host in self.hosts
        ]
        chosen = placement_policy.place(
            spec.compute,
            spec.model.source if spec.model is not None else "",
            hosts,
            usage.by_category.get(spec.name, {}),
            spread=spec.scaling.max_workers >= SPREAD_FROM,
            image=image_key(spec),
        )
        if chosen is None:
            return None
        where = Placement(chosen.host, chosen.gpu_indices, chosen.gpu_type, chosen.category)
        usage.add(spec.name, where)
        return where

    def _evict_parked_for(self, spec: EndpointSpec) -> None:
        """A parked worker of another endpoint gives its GPUs to a throttled one."""
        parked = [
            w
            for w in self._fleet.workers()
            if w.state == WorkerState.PARKED and w.endpoint != spec.name and w.placement
        ]
        if parked:
            victim = min(parked, key=lambda w: w.since)
            self._fleet.stop(victim, f"evicted: its GPU is needed by endpoint {spec.name}")

    # --- crash loops --------------------------------------------------------------------
    def worker_exited(self, worker: Worker, expected: bool) -> None:
        """Backs off new starts of an endpoint whose workers keep dying young."""
        now = self._clock()
        name = worker.endpoint
        if expected or now - worker.started_at >= HEALTHY_RUN_S:
            self._failures.pop(name, None)
            if not expected:
                self.poke()  # replace it now
            return
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        delay = min(0.5 * 2 ** (failures - 1), MAX_BACKOFF_S)
        self._hold_until[name] = now + delay
        log.warning(
            "workers of %s keep exiting (%d in a row): next in %.1fs", name, failures, delay
        )
