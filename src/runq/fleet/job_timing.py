"""Delay and execution times of jobs as the control plane hands them out and takes their
results, binned per endpoint for Prometheus histograms (`runq_job_delay_seconds`,
`runq_job_execution_seconds`). In memory: they start again at zero with the process, as
Prometheus expects of a counter after a restart.

Why here and not at scrape from the store: finished jobs are deleted after their retention,
and a histogram read from the table would go down.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from runq.core.job import Job

# Upper bounds in seconds: from a warm worker's few milliseconds to an hour-long job.
BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip


@dataclass
class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and the sum of the values."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_S) + 1))
    sum: float = 0.0
    version: int = 0  # one more at each observation: /metrics keeps its text until it moves

    def observe(self, seconds: float) -> None:
        self.version += 1
        seconds = max(0.0, seconds)
        # bisect_left: a value equal to a bound belongs to that bucket (le means <=).
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, values at or below it), +Inf last: Prometheus's shape.

        >>> h = Histogram()
        >>> for s in (0.004, 0.02, 0.02, 7.0):
        ...     h.observe(s)
        >>> [(le, n) for le, n in h.cumulative() if le in (0.005, 0.025, 5.0, 10.0)]
        [(0.005, 1), (0.025, 3), (5.0, 3), (10.0, 4)]
        """
        bounds = [*BUCKETS_S, float("inf")]
        result, running = [], 0
        for bound, n in zip(bounds, self.counts, strict=True):
            running += n
            result.append((bound, running))
        return result


class JobTimings:
    """Per endpoint: delay (submitted to taken) when a worker takes a job, execution (taken
    to result) when its worker reports the result. A job the reaper ends (execution timeout,
    lost worker) has no execution observed: it shows in `runq_jobs_ended_total`, and its times
    in the admin API's window."""

    def __init__(self) -> None:
        self.delay: dict[str, Histogram] = {}
        self.execution: dict[str, Histogram] = {}

    def started(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            if job.started_at is not None:
                self.delay.setdefault(job.endpoint, Histogram()).observe(
                    job.started_at - job.created_at
                )

    def finished(self, job: Job) -> None:
        if job.started_at is not None and job.finished_at is not None:
            self.execution.setdefault(job.endpoint, Histogram()).observe(
                job.finished_at - job.started_at
            )
