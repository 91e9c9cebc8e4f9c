"""What the scheduler drives: something that starts, parks, revives and stops workers.

Two kinds: `LocalProvisioner` (processes on this machine, the default) and `RayProvisioner`
(Ray actors on a cluster, with `[server] ray_address`). The scheduler and control plane only
use the methods below; a cluster provisioner also has `connect()` (called once, in a thread)
and `hosts()` (the cluster's nodes as hosts, re-read every few seconds), and may have
`load_index()` (awaited once, before the first start: what it knows from the store).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from runq.core.config import ServerConfig
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.fleet.registry import WorkerRegistry
from runq.models import ModelCache
from runq.store.base import JobStore

ExitHandler = Callable[[Worker, int, bool], Awaitable[None]]  # worker, exit code, expected


class Provisioner(Protocol):
    @property
    def models(self) -> ModelCache:
        """This machine's model cache."""
        ...

    def start(self, spec: EndpointSpec, worker: Worker) -> None: ...

    async def stop(self, worker_id: str, reason: str = "stopped") -> None: ...

    async def stop_endpoint(self, name: str, reason: str = "endpoint stopped") -> None: ...

    async def shutdown(self) -> None: ...

    def park(self, worker_id: str) -> bool: ...

    def revive(self, worker_id: str) -> bool: ...

    def kill(self, worker_id: str, reason: str | None = None) -> bool: ...

    def pid(self, worker_id: str) -> int | None: ...


def make_provisioner(
    config: ServerConfig, registry: WorkerRegistry, on_exit: ExitHandler, store: JobStore
) -> Provisioner:
    """Ray when the config names a cluster, else worker processes on this machine."""
    if config.ray_address:
        from runq.fleet.ray import RayProvisioner

        return RayProvisioner(config, registry, on_exit, config.ray_address, store)
    from runq.fleet.local import LocalProvisioner

    return LocalProvisioner(config, registry, on_exit)
