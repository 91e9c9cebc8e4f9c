"""Jobs and their lifecycle, as the RunPod wire protocol names them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobStatus(enum.StrEnum):
    """A job's state. Never `RUNNING`: RunPod's APIs say IN_PROGRESS (spec 1.2)."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_terminal(self) -> bool:
        return self not in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)


# The statuses that trigger a webhook (spec 1.6, section 6 item 17).
WEBHOOK_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})

# Result retention after a job ends (spec 1.7).
RETENTION_ASYNC_S = 30 * 60.0
RETENTION_SYNC_S = 60.0


@dataclass(frozen=True)
class JobRequest:
    """What a client submitted, validated; the store turns it into a Job."""

    endpoint: str
    input: Any
    webhook: str | None = None
    s3_config: dict[str, Any] | None = None
    low_priority: bool = False
    execution_timeout_s: float | None = None  # None: no limit
    ttl_s: float = 86400.0
    sync: bool = False
    id: str | None = None  # None: the store makes one


@dataclass(frozen=True)
class Job:
    """A job as stored. Times are epoch seconds from the store's clock."""

    id: str
    endpoint: str
    status: JobStatus
    input: Any
    created_at: float
    webhook: str | None = None
    s3_config: dict[str, Any] | None = None
    low_priority: bool = False
    execution_timeout_s: float | None = None
    ttl_s: float = 86400.0
    sync: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    has_output: bool = False
    output: Any = None
    error: str | None = None
    retries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def delay_ms(self) -> int | None:
        """Submission to pickup, integer ms (spec 1.3)."""
        if self.started_at is None:
            return None
        return max(0, round((self.started_at - self.created_at) * 1000))

    @property
    def execution_ms(self) -> int | None:
        """Pickup to final result, integer ms (spec 1.3)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0, round((self.finished_at - self.started_at) * 1000))

    def to_wire(self, now: float | None = None) -> dict[str, Any]:
        """The job object of /status, /runsync and webhooks, in RunPod's exact field names.

        `now` gives a queued job its delay so far and a running one its execution so far.
        """
        body: dict[str, Any] = {"id": self.id, "status": self.status.value}
        delay = self.delay_ms
        if delay is None and now is not None:
            delay = max(0, round((now - self.created_at) * 1000))
        if delay is not None:
            body["delayTime"] = delay
        execution = self.execution_ms
        if execution is None and now is not None and self.started_at is not None:
            execution = max(0, round((now - self.started_at) * 1000))
        if execution is not None:
            body["executionTime"] = execution
        if self.has_output:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        if self.worker_id is not None:
            body["workerId"] = self.worker_id
        if self.retries:
            body["retries"] = self.retries
        body.update(self.extra)
        return body

    def to_take_payload(self) -> dict[str, Any]:
        """What a worker's job-take gets: `id` and `input` always (spec 2.5)."""
        payload: dict[str, Any] = {"id": self.id, "input": self.input}
        if self.s3_config is not None:
            payload["s3Config"] = self.s3_config
        if self.webhook is not None:
            payload["webhook"] = self.webhook
        policy: dict[str, Any] = {"ttl": round(self.ttl_s * 1000), "lowPriority": self.low_priority}
        if self.execution_timeout_s is not None:
            policy["executionTimeout"] = round(self.execution_timeout_s * 1000)
        payload["policy"] = policy
        return payload

    def to_webhook(self) -> dict[str, Any]:
        """The full envelope RunPod POSTs to a webhook: the job object plus input and webhook."""
        body = self.to_wire()
        body["input"] = self.input
        if self.webhook is not None:
            body["webhook"] = self.webhook
        return body


@dataclass(frozen=True)
class WorkerResult:
    """A worker's job-done body, parsed (spec 2.7)."""

    is_progress: bool
    has_output: bool
    output: Any
    error: str | None
    stop_pod: bool

    @property
    def status(self) -> JobStatus:
        return JobStatus.FAILED if self.error is not None else JobStatus.COMPLETED


def parse_worker_result(body: Any) -> WorkerResult:
    """Map a job-done body to a result, following the SDK's shapes (spec 2.7 and 6.5-6.7).

    `error` present and not null means FAILED whatever its type; a non-string error is
    JSON-encoded. `output` is kept next to `error` when both come.
    """
    import json

    if not isinstance(body, dict):
        # A bare value is what a handler returned; treat it as the output.
        return WorkerResult(False, True, body, None, False)
    is_progress = body.get("status") == "IN_PROGRESS"
    error_value = body.get("error")
    error: str | None = None
    if error_value is not None and not is_progress:
        error = error_value if isinstance(error_value, str) else json.dumps(error_value)
    return WorkerResult(
        is_progress=is_progress,
        has_output="output" in body,
        output=body.get("output"),
        error=error,
        stop_pod=bool(body.get("stopPod")),
    )
