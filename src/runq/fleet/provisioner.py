"""What the scheduler drives: something that starts, parks, revives and stops workers.

Two kinds: `LocalProvisioner` (processes on this machine, the default) and `RayProvisioner`
(Ray actors on a cluster, with `[server] ray_address`). The scheduler and control plane only
use the methods below. `connect()` is called once, in a thread (joining a cluster takes
seconds); `load_index()` is awaited once, before the first start (what a cluster provisioner
knows from the store); `hosts()` is a cluster's nodes as hosts, re-read every few seconds, or
None on one machine (the scheduler then uses the config's hosts or this machine's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from runq.core.config import ServerConfig
from runq.core.hosts import Host
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.fleet.registry import WorkerRegistry
from runq.models import ModelCache
from runq.store.base import JobStore

# The worker, its exit code, whether the exit was asked for, and why it ended (for its
# timeline): the fleet (runq.fleet.fleet) takes it out of the registry.
ExitHandler = Callable[[Worker, int, bool, str], Awaitable[None]]


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

    def connect(self) -> None: ...

    async def load_index(self) -> None: ...

    def hosts(self) -> tuple[Host, ...] | None: ...

    # Image workers (runq.fleet.images): a deploy's pre-pull, the images this machine holds
    # (placement prefers them), and an undeployed endpoint's image let go (the budget may
    # evict it). A provisioner that cannot pre-pull (Ray: a worker's node is known only when
    # it starts) pulls at each start instead.
    def prepull(self, spec: EndpointSpec) -> None: ...

    def prepulling(self, endpoint: str) -> bool: ...

    def images_held(self) -> tuple[str, ...]: ...

    def release_image(self, endpoint: str) -> None: ...


def make_provisioner(
    config: ServerConfig, registry: WorkerRegistry, on_exit: ExitHandler, store: JobStore
) -> Provisioner:
    """Ray when the config names a cluster, else worker processes on this machine."""
    if config.ray_address:
        from runq.fleet.ray import RayProvisioner

        return RayProvisioner(config, registry, on_exit, config.ray_address, store)
    from runq.fleet.local import LocalProvisioner

    return LocalProvisioner(config, registry, on_exit)
