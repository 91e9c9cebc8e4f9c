"""Rows of ended jobs to a `JobWindow`, the same for every backend: each fetches the rows of
its window with its own SQL and hands them here: status, created_at, started_at (NULL for a
job no worker took) and finished_at.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any, Protocol

from runq.core.job import JobStatus
from runq.core.reads import TIMES_KEEP_S as TIMES_KEEP_S  # re-exported
from runq.core.reads import JobWindow
from runq.core.stats import Percentiles

ENDED = "ended:"  # counters named ended:COMPLETED ... count jobs by final status, for ever
ENDED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT)


class Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...


def summarise(rows: Iterable[Row], since: float, until: float) -> JobWindow:
    """Counts by status; delay and execution percentiles of the jobs a worker took."""
    statuses: collections.Counter[str] = collections.Counter()
    delays: list[float] = []
    executions: list[float] = []
    for row in rows:
        statuses[row["status"]] += 1
        if row["started_at"] is not None:
            # A clock that stepped back gives 0, never a negative time (as delay_ms does).
            delays.append(max(0.0, row["started_at"] - row["created_at"]))
            executions.append(max(0.0, row["finished_at"] - row["started_at"]))
    return JobWindow(
        since=since,
        until=until,
        completed=statuses[JobStatus.COMPLETED],
        failed=statuses[JobStatus.FAILED],
        cancelled=statuses[JobStatus.CANCELLED],
        timed_out=statuses[JobStatus.TIMED_OUT],
        delay=Percentiles.of(delays),
        execution=Percentiles.of(executions),
    )
