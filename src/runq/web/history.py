"""Queue length and workers over the last minutes, per endpoint, for the dashboard's chart.

A ring buffer in memory, filled by a task that samples once a second: the store keeps jobs,
not how long the queue was, and the chart needs only the recent past.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.jobs import Jobs

log = logging.getLogger("runq.web")

SAMPLE_EVERY_S = 1.0
KEEP = 600  # samples per endpoint: ten minutes at one a second


@dataclass(frozen=True)
class Sample:
    at: float
    queued: int
    in_progress: int
    workers: int  # workers that exist (any state but terminated)


class History:
    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._samples: dict[str, deque[Sample]] = {}

    def add(self, endpoint: str, sample: Sample) -> None:
        line = self._samples.setdefault(endpoint, deque(maxlen=self._keep))
        line.append(sample)

    def samples(self, endpoint: str) -> list[Sample]:
        return list(self._samples.get(endpoint, ()))

    def forget_missing(self, endpoints: set[str]) -> None:
        for name in set(self._samples) - endpoints:
            del self._samples[name]


@dataclass(frozen=True)
class Sources:
    """What the chart samples: the served endpoints, their queues and workers."""

    endpoints: Endpoints
    jobs: Jobs
    fleet: Fleet
    clock: Callable[[], float]


async def sample(sources: Sources, history: History) -> None:
    """One sample of every deployed endpoint."""
    now = sources.clock()
    names = sources.endpoints.names()
    read = await sources.jobs.queue_stats_many(names)
    for name, stats in read.items():
        workers = len(sources.fleet.workers(name))
        history.add(name, Sample(now, stats.in_queue, stats.in_progress, workers))
    history.forget_missing(set(names))


async def run(sources: Sources, history: History, every_s: float = SAMPLE_EVERY_S) -> None:
    """Sample until cancelled; a failed sample (the store closing) is logged and skipped."""
    while True:
        try:
            await sample(sources, history)
        except Exception:  # the chart may miss a point; the server must not stop
            log.debug("dashboard sample failed", exc_info=True)
        await asyncio.sleep(every_s)
