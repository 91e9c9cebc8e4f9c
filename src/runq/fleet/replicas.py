"""This control plane's part among `runq serve` replicas that share one store (PostgreSQL).

Every replica answers the client API from the store. Only the holder of the scheduler lock
(runq.store.leader) runs the fleet; the others stand by, forward worker calls to it, and take
over when it dies. What one replica does reaches the others through the store's NOTIFY hints:
work queued (wake long-polling workers), a running job cancelled (stop it on its worker) and
an endpoint saved (serve it as stored); the clients waiting on a job changed through another
replica are woken by a sweep over the store (runq.fleet.job_watch).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from typing import TYPE_CHECKING

import httpx

from runq.core.spec import EndpointSpec
from runq.fleet import job_watch
from runq.store.base import SharedStore

if TYPE_CHECKING:
    from runq.fleet.controlplane import ControlPlane

log = logging.getLogger("runq")

LEADER_URL_TTL_S = 1.0  # a standby re-reads the leader's URL at most this often
SHARED_STORE_POLL_S = 0.2  # waited jobs changed through another replica wake within this


class Replication:
    def __init__(self, plane: ControlPlane, store: SharedStore) -> None:
        self._plane = plane
        self._store = store
        self._lock = store.leader_lock()
        self._http: httpx.AsyncClient | None = None
        self._leader_url: tuple[str | None, float] = (None, -math.inf)
        self._reloads: set[asyncio.Task[None]] = set()

    def start(self) -> list[asyncio.Task[None]]:
        """Stand by for the lock, and listen to the other replicas."""
        plane = self._plane
        hints = self._store.listen(
            plane.signals.job_queued,
            plane.signals.closed,
            self._stop_if_mine,
            self._endpoint_saved,
        )
        waits = job_watch.watch(self._store, plane.signals, SHARED_STORE_POLL_S)
        return [
            asyncio.create_task(self._stand_by(), name="runq-leader"),
            asyncio.create_task(hints, name="runq-listen"),
            asyncio.create_task(waits, name="runq-waits"),
        ]

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    # --- standing by --------------------------------------------------------------------
    async def _stand_by(self) -> None:
        plane = self._plane
        if not await self._lock.acquire(plane.signals.closed, plane.config.base_url):
            return
        log.warning("this replica holds the scheduler lock: it runs the fleet now")
        # A deploy hint missed while the listener reconnected is caught up here.
        await plane.load_stored_specs()
        await plane.lead()
        await self._lock.watch(plane.signals.closed)
        if plane.signals.closed.is_set():
            await self._lock.release()
            return
        # Another replica may run the fleet by now: two fleets would hand out jobs twice.
        log.critical("lost the scheduler lock: exiting so that only one replica runs the fleet")
        os._exit(3)

    def http_client(self) -> httpx.AsyncClient:
        """One pooled client for forwarding worker calls to the leader (made on first use)."""
        if self._http is None:
            self._http = httpx.AsyncClient(limits=httpx.Limits(max_connections=256))
        return self._http

    async def leader_url(self) -> str | None:
        """Where worker calls go while this replica stands by (cached for a second)."""
        now = self._plane.clock()
        if now - self._leader_url[1] > LEADER_URL_TTL_S:
            self._leader_url = (await self._lock.leader_url(), now)
        return self._leader_url[0]

    # --- hints from the other replicas --------------------------------------------------
    def _stop_if_mine(self, worker_id: str, job_id: str) -> None:
        """A job cancelled through another replica: tell its worker, if it is one of ours."""
        if self._plane.registry.get(worker_id) is not None:
            self._plane.stop_on_worker(worker_id, job_id)

    def _endpoint_saved(self, name: str) -> None:
        task = asyncio.create_task(self._reload(name), name=f"runq-reload-{name}")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload(self, name: str) -> None:
        """Serve `name` as the store now has it. A change of what the workers run restarts
        them, as a deploy does; a scaling change does not."""
        plane = self._plane
        old = plane.specs.get(name)
        spec = await plane.load_stored_spec(name)
        if spec is None and old is not None and await _undeployed(plane, name):
            if not plane.undeploys.draining(name):  # a drain here stops them when it ends
                await plane.undeploys.stop_workers(name)  # undeployed through another replica
            return
        if spec is None or old == spec:
            return  # gone, unreadable, our own save, or no change
        plane.specs[name] = spec
        plane.undeploys.deployed_again(name)
        if old is not None and plane.leading and runs_differently(old, spec):
            await plane.replace_workers(old, spec)
        log.info("endpoint %s updated from the store (saved by another replica)", name)
        plane.scheduler.poke()


async def _undeployed(plane: ControlPlane, name: str) -> bool:
    return all(stored != name for stored, _, _ in await plane.store.endpoints())


def runs_differently(old: EndpointSpec, new: EndpointSpec) -> bool:
    """Would the endpoint's workers run differently (so they must be replaced)? Scaling and
    job settings apply to running workers as they are."""
    return (old.type, old.worker, old.compute, old.model) != (
        new.type,
        new.worker,
        new.compute,
        new.model,
    )
