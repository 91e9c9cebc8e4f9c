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
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from runq.fleet import job_watch
from runq.fleet.signals import Signals
from runq.store.base import SharedStore

log = logging.getLogger("runq")

LEADER_URL_TTL_S = 1.0  # a standby re-reads the leader's URL at most this often
SHARED_STORE_POLL_S = 0.2  # waited jobs changed through another replica wake within this


class Replication:
    """Its parts are passed in as callables: `lead` runs the fleet here, `reload` serves an
    endpoint as the store now has it, `stop_if_mine` stops a job on a worker of this replica."""

    def __init__(
        self,
        store: SharedStore,
        signals: Signals,
        base_url: str,
        clock: Callable[[], float],
        lead: Callable[[], Coroutine[Any, Any, None]],
        reload: Callable[[str], Coroutine[Any, Any, None]],
        stop_if_mine: Callable[[str, str], None],
    ) -> None:
        self._store = store
        self._signals = signals
        self._base_url = base_url
        self._clock = clock
        self._lead = lead
        self._reload = reload
        self._stop_if_mine = stop_if_mine
        self._lock = store.leader_lock()
        self._http: httpx.AsyncClient | None = None
        self._leader_url: tuple[str | None, float] = (None, -math.inf)
        self._reloads: set[asyncio.Task[None]] = set()

    def start(self) -> list[asyncio.Task[None]]:
        """Stand by for the lock, and listen to the other replicas."""
        hints = self._store.listen(
            self._signals.job_queued,
            self._signals.closed,
            self._stop_if_mine,
            self._endpoint_saved,
        )
        waits = job_watch.watch(self._store, self._signals, SHARED_STORE_POLL_S)
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
        closed = self._signals.closed
        if not await self._lock.acquire(closed, self._base_url):
            return
        log.warning("this replica holds the scheduler lock: it runs the fleet now")
        await self._lead()  # (it first catches up on deploy hints missed meanwhile)
        await self._lock.watch(closed)
        if closed.is_set():
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
        now = self._clock()
        if now - self._leader_url[1] > LEADER_URL_TTL_S:
            self._leader_url = (await self._lock.leader_url(), now)
        return self._leader_url[0]

    # --- hints from the other replicas --------------------------------------------------
    def _endpoint_saved(self, name: str) -> None:
        task = asyncio.create_task(self._reload(name), name=f"runq-reload-{name}")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)
