"""Undeploying an endpoint: `runq undeploy NAME [--drain]`, `DELETE /admin/endpoints/NAME`.

The stored endpoint file is deleted first (durable: a restart does not serve it again). Then
either at once: queued and running jobs are cancelled, the workers stop; or with `drain`: new
jobs are refused (410), the queued and running ones run to their end, then the workers stop.
Either way the endpoint's jobs stay in the store for their retention, readable by id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from runq.core.job import JobStatus
from runq.errors import Gone, NotFound
from runq.fleet.images import release_on_undeploy

if TYPE_CHECKING:
    from runq.fleet.controlplane import ControlPlane

log = logging.getLogger("runq")

DRAIN_POLL_S = 0.2  # a draining endpoint's jobs are re-counted this often
CANCEL_BATCH = 10_000  # jobs read per pass when cancelling an endpoint's jobs


class Undeployer:
    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane
        self._draining: set[str] = set()
        self._gone: set[str] = set()  # undeployed since this control plane started
        self._tasks: set[asyncio.Task[None]] = set()

    def not_served(self, endpoint: str) -> NotFound:
        """The error for a request to an endpoint that is not deployed (now)."""
        if endpoint in self._gone:
            return Gone(f"endpoint '{endpoint}' was undeployed: it takes no new jobs")
        return NotFound(f"endpoint '{endpoint}' is not deployed")

    def check_open(self, endpoint: str) -> None:
        """Raises Gone while the endpoint drains before it is undeployed."""
        if endpoint in self._draining:
            raise Gone(
                f"endpoint '{endpoint}' is being undeployed (draining): it takes no new jobs"
            )

    def draining(self, endpoint: str) -> bool:
        return endpoint in self._draining

    def deployed_again(self, endpoint: str) -> None:
        self._gone.discard(endpoint)
        self._draining.discard(endpoint)

    async def undeploy(self, endpoint: str, drain: bool) -> dict[str, Any]:
        """Undeploy `endpoint`; the answer of DELETE /admin/endpoints/NAME.

        Raises:
            NotFound: the endpoint is not deployed (Gone: undeployed already).
        """
        plane = self._plane
        plane.spec(endpoint)
        await plane.store.delete_endpoint(endpoint)
        if drain:
            self._draining.add(endpoint)
            stats = await plane.store.queue_stats(endpoint)
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
        self._gone.add(endpoint)  # from here new jobs get 410 (the spec goes below)
        plane.specs.pop(endpoint, None)
        cancelled = await self._cancel_jobs(endpoint)
        await self.stop_workers(endpoint)
        log.info("endpoint %s undeployed: %d job(s) cancelled", endpoint, cancelled)
        return {"name": endpoint, "status": "undeployed", "cancelled": cancelled}

    async def stop_workers(self, endpoint: str) -> None:
        """Stop serving `endpoint` here: forget its spec, stop its workers."""
        plane = self._plane
        plane.specs.pop(endpoint, None)
        self._draining.discard(endpoint)
        self._gone.add(endpoint)
        plane.scheduler.reshaper.forget(endpoint)
        plane.signals.work_available(endpoint)  # held takes answer empty
        for worker in plane.registry.all(endpoint):
            if plane.provisioner.pid(worker.id) is None and worker.managed:
                plane.registry.remove(worker.id, "endpoint undeployed")  # throttled: no process
        if plane.leading:
            await plane.provisioner.stop_endpoint(endpoint, "endpoint undeployed")
            release_on_undeploy(plane.provisioner, endpoint)  # its image may be evicted now

    async def _cancel_jobs(self, endpoint: str) -> int:
        """Cancel every queued and running job of the endpoint (running ones are stopped on
        their workers); their waiters wake with CANCELLED."""
        plane = self._plane
        cancelled = 0
        # The newest jobs hold any still open; one queued past them is purged below (and its
        # waiters woken, as any purge does).
        for job in await plane.store.recent_jobs(endpoint, CANCEL_BATCH):
            if not job.status.is_terminal:
                ended = await plane.cancel(job.id)
                if ended is not None and ended.status == JobStatus.CANCELLED:
                    cancelled += 1
        return cancelled + await plane.purge(endpoint)  # any that raced in

    async def _drain(self, endpoint: str) -> None:
        """Wait until the endpoint's jobs (or requests in flight) have ended, then stop."""
        plane = self._plane
        try:
            while endpoint in self._draining:
                stats = await plane.store.queue_stats(endpoint)
                load = plane.lb.stats(endpoint)
                if stats.in_queue + stats.in_progress + load.held + load.in_flight == 0:
                    break
                await asyncio.sleep(DRAIN_POLL_S)
            if endpoint in self._draining:  # not deployed again meanwhile
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
