"""A clock that moves only when told, and a provisioner that starts nothing: the real
services (runq.server.services) around them, so fleet behaviour runs in milliseconds."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runq.core.config import ServerConfig
from runq.core.hosts import Gpu, Host
from runq.core.job import Job, JobRequest
from runq.core.spec import EndpointSpec, loads_spec
from runq.core.worker import Worker, WorkerState
from runq.fleet.provisioner import ExitHandler
from runq.fleet.registry import WorkerRegistry
from runq.models import ModelCache
from runq.server.services import Services
from runq.store.base import JobStore
from runq.store.sqlite import SqliteJobStore


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeProvisioner:
    """Records what the fleet asked for; a "process" is a pid in `running`."""

    registry: WorkerRegistry
    on_exit: ExitHandler
    hosts_: tuple[Host, ...]
    models: ModelCache
    running: dict[str, int] = field(default_factory=dict)
    preparing: set[str] = field(default_factory=set)  # started, no process yet (a pull)
    prepare_first: bool = False  # start() prepares instead of spawning at once
    log: list[tuple[str, str]] = field(default_factory=list)  # (action, worker id)
    _pids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def start(self, spec: EndpointSpec, worker: Worker) -> None:
        self.log.append(("start", worker.id))
        if self.prepare_first:
            self.preparing.add(worker.id)
        else:
            self.running[worker.id] = next(self._pids)

    async def stop(self, worker_id: str, reason: str = "stopped") -> None:
        """As the real one: a worker still being prepared is cut short, and never ran."""
        self.log.append(("stop", worker_id))
        self.preparing.discard(worker_id)
        await self.exit(worker_id, 0, expected=True)

    async def stop_endpoint(self, name: str, reason: str = "endpoint stopped") -> None:
        for worker in self.registry.all(name):
            await self.stop(worker.id, reason)

    async def shutdown(self) -> None:
        self.running.clear()

    def park(self, worker_id: str) -> bool:
        self.log.append(("park", worker_id))
        return worker_id in self.running

    def revive(self, worker_id: str) -> bool:
        self.log.append(("revive", worker_id))
        return worker_id in self.running

    def kill(self, worker_id: str, reason: str | None = None) -> bool:
        self.log.append(("kill", worker_id))
        return self.running.pop(worker_id, None) is not None

    def pid(self, worker_id: str) -> int | None:
        return self.running.get(worker_id)

    def connect(self) -> None:
        """Nothing to join."""

    async def load_index(self) -> None:
        """Nothing to read."""

    def hosts(self) -> tuple[Host, ...]:
        return self.hosts_

    def prepull(self, spec: EndpointSpec) -> None:
        """No images here."""

    def prepulling(self, endpoint: str) -> bool:
        return False

    def images_held(self) -> tuple[str, ...]:
        return ()

    def release_image(self, endpoint: str) -> None:
        """No images here."""

    async def exit(self, worker_id: str, code: int, expected: bool = False) -> None:
        """The worker's process ends, as the real provisioner reports it."""
        if self.running.pop(worker_id, None) is None:
            return
        worker = self.registry.get(worker_id)
        if worker is not None:
            await self.on_exit(worker, code, expected, f"exited with code {code}")

    def actions(self, action: str) -> list[str]:
        return [worker_id for done, worker_id in self.log if done == action]


@dataclass
class Fleet:
    """The services on a fake clock and provisioner, and helpers to play the workers."""

    services: Services
    clock: FakeClock
    provisioner: FakeProvisioner
    root: Path

    def deploy(self, toml: str) -> EndpointSpec:
        spec = loads_spec(toml, self.root / "endpoint.toml")
        self.services.endpoints.serve(spec)
        return spec

    async def tick(self, seconds: float = 0.0) -> None:
        """Time passes; then the scheduler and the reaper run once, as their loops would."""
        self.clock.advance(seconds)
        await self.services.scheduler.tick()
        await self.services.fleet.drain()  # the stops it began
        await self.services.reaper.tick()

    async def submit(self, endpoint: str, n: int = 1) -> list[Job]:
        request = JobRequest(endpoint=endpoint, input={})
        return [await self.services.jobs.submit(request) for _ in range(n)]

    def workers(self, endpoint: str | None = None) -> list[Worker]:
        return self.services.fleet.workers(endpoint)

    def states(self, endpoint: str | None = None) -> list[WorkerState]:
        return sorted((w.state for w in self.workers(endpoint)), key=lambda s: s.value)

    async def ready(self, worker: Worker) -> None:
        """The worker's first heartbeat: it is past its cold start."""
        await self.services.fleet.ping(worker, frozenset(), {})


def gpu_host(count: int = 1, name: str = "box", cpu_slots: int = 4) -> Host:
    return Host(name=name, gpus=(Gpu("L4", 24, count),), cpu_slots=cpu_slots)


@asynccontextmanager
async def fake_fleet(
    root: Path, hosts: tuple[Host, ...] = (gpu_host(),), **server: float
) -> AsyncIterator[Fleet]:
    """Services on a fake clock and provisioner over a real SQLite store in `root`."""
    clock = FakeClock()
    config = ServerConfig(data_dir=root / "data", **server)  # type: ignore[arg-type]
    made: list[FakeProvisioner] = []

    def provisioner(
        config: ServerConfig, registry: WorkerRegistry, on_exit: ExitHandler, store: JobStore
    ) -> FakeProvisioner:
        made.append(FakeProvisioner(registry, on_exit, hosts, ModelCache(root / "models", 0)))
        return made[0]

    store = SqliteJobStore(root / "runq.db", clock=clock)
    services = Services(config, store, "secret", clock=clock, provisioner=provisioner)
    await store.open()
    await services.fleet.adopt_running_jobs()
    services.scheduler.start()
    try:
        yield Fleet(services, clock, made[0], root)
    finally:
        await store.close()
