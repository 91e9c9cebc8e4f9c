"""In-process wake-ups: queued work for long-polling workers, job changes for waiting clients.

These are hints, never state: a waiter always re-reads the store after waking. A waiter takes
its event *before* reading the store, so a change between the read and the wait still wakes it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class _Gate:
    """An event that is replaced each time it fires, so each wait sees the next change."""

    __slots__ = ("event", "waiters")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.waiters = 0


class Signals:
    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._jobs: dict[str, _Gate] = {}
        self._stops: dict[str, set[str]] = defaultdict(set)
        self._stop_events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.closed = asyncio.Event()

    # --- queue: workers wait for work -----------------------------------------------------
    def queue_event(self, endpoint: str) -> asyncio.Event:
        """The event the next enqueue on `endpoint` sets. Take it before reading the queue."""
        return self._queues[endpoint]

    def work_available(self, endpoint: str) -> None:
        event = self._queues.pop(endpoint, None)
        if event is not None:
            event.set()

    # --- jobs: clients wait for a change --------------------------------------------------
    def job_gate(self, job_id: str) -> _Gate:
        gate = self._jobs.get(job_id)
        if gate is None:
            gate = self._jobs[job_id] = _Gate()
        gate.waiters += 1
        return gate

    def release(self, job_id: str, gate: _Gate) -> None:
        gate.waiters -= 1
        if gate.waiters <= 0 and self._jobs.get(job_id) is gate:
            del self._jobs[job_id]

    def waited_jobs(self) -> list[str]:
        """The jobs that clients wait on now."""
        return list(self._jobs)

    def job_changed(self, job_id: str) -> None:
        gate = self._jobs.pop(job_id, None)
        if gate is not None:
            gate.event.set()

    # --- stops: workers long-poll for jobs to stop ---------------------------------------
    def stop_job(self, worker_id: str, job_id: str) -> None:
        self._stops[worker_id].add(job_id)
        self._stop_events[worker_id].set()

    def stop_event(self, worker_id: str) -> asyncio.Event:
        return self._stop_events[worker_id]

    def pop_stops(self, worker_id: str) -> list[str]:
        jobs = sorted(self._stops.pop(worker_id, set()))
        self._stop_events.pop(worker_id, None)
        return jobs

    def forget_worker(self, worker_id: str) -> None:
        self._stops.pop(worker_id, None)
        event = self._stop_events.pop(worker_id, None)
        if event is not None:
            event.set()

    # --- shutdown: every held request answers now ----------------------------------------
    def close(self) -> None:
        self.closed.set()
        for event in self._queues.values():
            event.set()
        for gate in self._jobs.values():
            gate.event.set()
        for event in self._stop_events.values():
            event.set()


async def wait_any(timeout: float, *events: asyncio.Event) -> bool:
    """Wait until one of `events` is set or `timeout` passes. True if an event fired."""
    if any(event.is_set() for event in events):
        return True
    if timeout <= 0:
        return False
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for waiter in waiters:
            waiter.cancel()
