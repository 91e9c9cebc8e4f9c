"""`runq_worker_cold_start_seconds{endpoint, phase}`: each worker's cold start by phase
(runq.policy.coldstart), observed once when the worker is first seen ready at a scrape.

A tally, not a read of the registry at each scrape: the registry keeps a bounded history of
workers, and a histogram rebuilt from it would go down when old workers drop out of it.
"""

from __future__ import annotations

from runq.fleet.fleet import Fleet
from runq.fleet.job_timing import Histogram
from runq.policy.coldstart import cold_start

PHASES = ("init", "image_pull", "container_start", "import", "load", "ready", "total")


class ColdStartTally:
    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._by: dict[tuple[str, str], Histogram] = {}

    def update(self, fleet: Fleet) -> bool:
        """Observe the workers first seen ready since the last call. True if any was."""
        known = fleet.history(None)
        changed = False
        for worker in known:
            phases = None if worker.id in self._seen else cold_start(worker)
            if phases is None:
                continue
            self._seen.add(worker.id)
            changed = True
            for phase in PHASES:
                value = getattr(phases, f"{phase}_s")
                if value is not None:
                    self._by.setdefault((worker.endpoint, phase), Histogram()).observe(value)
        self._seen &= {worker.id for worker in known}  # a worker gone from history never returns
        return changed

    @property
    def series(self) -> dict[tuple[str, ...], Histogram]:
        """(endpoint, phase) -> its histogram."""
        return {key: histogram for key, histogram in self._by.items()}
