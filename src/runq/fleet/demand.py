"""Recent arrivals and execution times per endpoint, for the scaling snapshot.

runq's own scalers ("slo", "histogram") size the fleet from the arrival rate, the gaps between
arrivals and the execution times seen lately; the simulator keeps the same history. In memory
and bounded: a restart forgets it, and the scalers fall back to the endpoint's settings until
it fills again.
"""

from __future__ import annotations

from collections import deque

from runq.core.job import Job
from runq.policy.scaling import RECENT_ARRIVALS, RECENT_EXECUTIONS


class DemandHistory:
    def __init__(self) -> None:
        self._arrivals: dict[str, deque[float]] = {}
        self._executions: dict[str, deque[float]] = {}

    def arrived(self, job: Job) -> None:
        queue = self._arrivals.setdefault(job.endpoint, deque(maxlen=RECENT_ARRIVALS))
        queue.append(job.created_at)

    def finished(self, job: Job) -> None:
        if job.started_at is None or job.finished_at is None:
            return
        queue = self._executions.setdefault(job.endpoint, deque(maxlen=RECENT_EXECUTIONS))
        queue.append(max(0.0, job.finished_at - job.started_at))

    def arrivals(self, endpoint: str) -> tuple[float, ...]:
        return tuple(self._arrivals.get(endpoint, ()))

    def executions(self, endpoint: str) -> tuple[float, ...]:
        return tuple(self._executions.get(endpoint, ()))
