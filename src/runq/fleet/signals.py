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
        # Each held job-take poll's ticket, oldest first (a dict: ordered, O(1) removal).
        self._takers: dict[str, dict[asyncio.Event, None]] = defaultdict(dict)
        self._jobs: dict[str, _Gate] = {}
        self._stops: dict[str, set[str]] = defaultdict(set)
        self._stop_events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.closed = asyncio.Event()

    # --- queue: workers wait for work -----------------------------------------------------
    # One queued job wakes one held poll, not all of them: with 1,000 idle workers, waking
    # every poll of an endpoint for each job was ten takes from the store per job, nine of
    # them finding nothing. A poll that leaves with a wake it did not act on passes it on
    # (`leave`), and the scheduler's tick wakes as many polls as jobs it finds queued (a
    # wake lost in a race costs at most a tick).
    def ticket(self, endpoint: str) -> asyncio.Event:
        """A held poll's place in line: set by a `job_queued` (or `work_available`) from now
        on. Take it before reading the queue, and `leave` with it."""
        event = asyncio.Event()
        self._takers[endpoint][event] = None
        return event

    def leave(self, endpoint: str, ticket: asyncio.Event, acted: bool) -> None:
        """A poll is done with `ticket`. `acted`: it read the queue after the ticket was set
        (so it saw the job the wake was for); if not, that wake goes to the next poll."""
        takers = self._takers.get(endpoint)
        if takers is not None and takers.pop(ticket, False) is None:
            if not takers:
                del self._takers[endpoint]
            return  # never woken
        if ticket.is_set() and not acted:
            self.job_queued(endpoint)

    def job_queued(self, endpoint: str, jobs: int = 1) -> None:
        """`jobs` more jobs to take on `endpoint`: wakes that many held polls, oldest first."""
        takers = self._takers.get(endpoint)
        while takers and jobs > 0:
            ticket = next(iter(takers))
            del takers[ticket]
            ticket.set()
            jobs -= 1
        if takers is not None and not takers:
            del self._takers[endpoint]

    def waiting_polls(self, endpoint: str) -> int:
        return len(self._takers.get(endpoint, ()))

    def work_available(self, endpoint: str) -> None:
        """Every held poll of `endpoint` re-checks now (it may be closed to jobs now: a drain,
        a park, an undeploy)."""
        self.job_queued(endpoint, len(self._takers.get(endpoint, ())))

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
        for takers in self._takers.values():
            for ticket in takers:
                ticket.set()
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
