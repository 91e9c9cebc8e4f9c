"""Undeploying an endpoint: `runq undeploy NAME [--drain]`, `DELETE /admin/endpoints/NAME`.

The stored endpoint file is deleted first (durable: a restart does not serve it again). Then
either at once: queued and running jobs are cancelled, the workers stop; or with `drain`: new
jobs are refused (410), the queued and running ones run to their end, then the workers stop.
Either way the endpoint's jobs stay in the store for their retention, readable by id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from runq.core.job import JobStatus
from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.jobs import Jobs
from runq.fleet.lb import LoadBalancer

log = logging.getLogger("runq")

DRAIN_POLL_S = 0.2  # a draining endpoint's jobs are re-counted this often
CANCEL_BATCH = 10_000  # jobs read per pass when cancelling an endpoint's jobs


class Undeployer:
    def __init__(
        self,
        endpoints: Endpoints,
        jobs: Jobs,
        fleet: Fleet,
        lb: LoadBalancer,
        leading: Callable[[], bool],
        forget_roll: Callable[[str], None],
    ) -> None:
        self._endpoints = endpoints
        self._jobs = jobs
        self._fleet = fleet
        self._lb = lb
        self._leading = leading
        self._forget_roll = forget_roll
        self._tasks: set[asyncio.Task[None]] = set()

    async def undeploy(self, endpoint: str, drain: bool) -> dict[str, Any]:
        """Undeploy `endpoint`; the answer of DELETE /admin/endpoints/NAME.

        Raises:
            NotFound: the endpoint is not deployed (Gone: undeployed already).
        """
        self._endpoints.spec(endpoint)
        await self._endpoints.delete_stored(endpoint)
        if drain:
            self._endpoints.start_draining(endpoint)
            stats = await self._jobs.queue_stats(endpoint)
            task = asyncio.create_task(self._drain(endpoint), name=f"runq-drain-{endpoint}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            log.info("endpoint %s undeployed: draining %d queued job(s)", endpoint, stats.in_queue)
            return {
                "name": endpoint,
                "status": "draining",
                "in_queue": stats.in_queue,
                "in_progress": stats.in_progress,
            }
        self._endpoints.forget(endpoint)  # from here new jobs get 410
        cancelled = await self._cancel_jobs(endpoint)
        await self.stop_workers(endpoint)
        log.info("endpoint %s undeployed: %d job(s) cancelled", endpoint, cancelled)
        return {"name": endpoint, "status": "undeployed", "cancelled": cancelled}

    async def stop_workers(self, endpoint: str) -> None:
        """Stop serving `endpoint` here: forget its spec, stop its workers."""
        self._endpoints.forget(endpoint)
        self._forget_roll(endpoint)
        await self._fleet.stop_endpoint(endpoint, self._leading())

    async def _cancel_jobs(self, endpoint: str) -> int:
        """Cancel every queued and running job of the endpoint (running ones are stopped on
        their workers); their waiters wake with CANCELLED."""
        cancelled = 0
        # The newest jobs hold any still open; one queued past them is purged below (and its
        # waiters woken, as any purge does).
        for job in await self._jobs.recent(endpoint, CANCEL_BATCH):
            if not job.status.is_terminal:
                ended = await self._jobs.cancel(job.id)
                if ended is not None and ended.status == JobStatus.CANCELLED:
                    cancelled += 1
        return cancelled + await self._jobs.purge(endpoint)  # any that raced in

    async def _drain(self, endpoint: str) -> None:
        """Wait until the endpoint's jobs (or requests in flight) have ended, then stop."""
        try:
            while self._endpoints.draining(endpoint):
                stats = await self._jobs.queue_stats(endpoint)
                load = self._lb.stats(endpoint)
                if stats.in_queue + stats.in_progress + load.held + load.in_flight == 0:
                    break
                await asyncio.sleep(DRAIN_POLL_S)
            if self._endpoints.draining(endpoint):  # not deployed again meanwhile
                await self.stop_workers(endpoint)
                log.info("endpoint %s drained and undeployed", endpoint)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("draining endpoint %s failed", endpoint)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
