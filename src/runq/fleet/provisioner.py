"""What the scheduler drives: something that starts, parks, revives and stops workers.

Two kinds: `LocalProvisioner` (processes on this machine, the default) and `RayProvisioner`
(Ray actors on a cluster, with `[server] ray_address`); the composition root
(runq.server.services) chooses. This module is the interface alone: it imports neither.

The fleet and the scheduler use only the methods below. `connect()` is called once, in a
thread (joining a cluster takes seconds); `load_index()` is awaited once, before the first
start (what a cluster provisioner knows from the store); `hosts()` is a cluster's nodes as
hosts, re-read every few seconds, or None on one machine (the scheduler then uses the
config's hosts or this machine's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from runq.core.hosts import Host
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.models import ModelCache

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
