"""What the job store answers besides jobs: queue statistics, windows of ended jobs, stream
reads. Plain values, shared by the store that makes them and the services and API that read
them (which never import the store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runq.core.job import Job, JobStatus
from runq.core.stats import Percentiles

TIMES_KEEP_S = 86400.0  # an ended job's times are kept this long for windows, past the job


@dataclass(frozen=True)
class FinishOutcome:
    """What `finish` did. `applied` is False for a duplicate or late report (nothing changed)."""

    job: Job | None
    applied: bool
    taken: list[Job] = field(default_factory=list)  # the next jobs, with `then_take`


@dataclass(frozen=True)
class QueueStats:
    in_queue: int
    in_progress: int
    oldest_queued_at: float | None


@dataclass(frozen=True)
class JobWindow:
    """An endpoint's jobs that ended in (`since`, `until`]: counts by final status, and the
    delay (created to started) and execution (started to finished) times in seconds of those
    that a worker took (a job cancelled or expired in the queue has neither)."""

    since: float
    until: float
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    delay: Percentiles
    execution: Percentiles

    @property
    def ended(self) -> int:
        return self.completed + self.failed + self.cancelled + self.timed_out


@dataclass(frozen=True)
class JobTiming:
    """One job a worker ran to its end, its times in epoch seconds: what `runq advise` fits
    execution and delay times to, and replays as a trace."""

    id: str
    status: JobStatus
    created_at: float
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class StreamRead:
    job: Job
    chunks: list[Any]
