"""The job store contract. Every backend passes `tests/store/test_contract.py`.

Every state change is one atomic statement guarded by the state it expects, so that racing
callers (two workers taking, a cancel against a job-done) cannot both win. Methods are async
and return once their change is committed. Changes a client asked for (enqueue, cancel, retry,
purge) and the reaper's are also synced to disk by then; a worker's (take, finish, progress,
stream) may be synced a few tens of milliseconds later, because losing one in a power cut
costs only a re-run of the job (at-least-once), never an accepted job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from runq.core.idempotency import IdempotencyKey, Submission
from runq.core.job import Job, JobRequest, JobStatus, WorkerResult
from runq.core.keys import ApiKey

# Re-exported: the store's answers are core values (runq.core.reads).
from runq.core.reads import FinishOutcome as FinishOutcome
from runq.core.reads import JobTiming as JobTiming
from runq.core.reads import JobWindow as JobWindow
from runq.core.reads import QueueStats as QueueStats
from runq.core.reads import StreamRead as StreamRead

if TYPE_CHECKING:
    from runq.store.leader import LeaderLock


@dataclass(frozen=True)
class Webhook:
    id: int
    job_id: str
    url: str
    body: str
    attempts: int


class JobStore(Protocol):
    async def open(self) -> None:
        """Create or migrate the schema. Must be called once before any other method."""

    async def close(self) -> None:
        """Flush and release the database."""

    async def enqueue(self, request: JobRequest, max_queue: int = 0) -> Job:
        """Store a new IN_QUEUE job and return it once durable. A given `id` is idempotent:
        enqueueing it again returns the stored job unchanged. With `max_queue` > 0, a new job
        is refused (QueueFull, nothing stored) while the endpoint already holds that many
        IN_QUEUE jobs; the count and the insert are one atomic step."""

    async def enqueue_once(
        self, request: JobRequest, key: IdempotencyKey, max_queue: int = 0
    ) -> Submission:
        """`enqueue` under an idempotency key, in one transaction: the first call with `key`
        stores a new job and the key with it (`replayed` False); every later call within
        `runq.core.idempotency.KEEP_S` (24 h) of it stores nothing and returns the job the key
        names, as it is now (`replayed` True; `job` None and `ended_as` its final status once
        the job was deleted after its retention). Racing calls with one key make one job.
        After 24 h the key is free again. A replay is never refused by `max_queue`.

        Raises:
            IdempotencyMismatch: the key was stored with another `fingerprint`.
            QueueFull: as `enqueue`; neither job nor key stored.
        """

    async def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown or deleted after its retention."""

    async def take(self, endpoint: str, worker_id: str, limit: int) -> list[Job]:
        """Move up to `limit` queued jobs of `endpoint` to IN_PROGRESS for `worker_id`, normal
        priority before low priority, oldest first, skipping jobs past their TTL. One job is
        taken by exactly one caller."""

    async def finish(
        self, job_id: str, worker_id: str, result: WorkerResult, then_take: int = 0
    ) -> FinishOutcome:
        """Record a final result from the worker that holds the job. Applied only if the job is
        IN_PROGRESS on that worker; otherwise nothing changes (duplicate, late or stale report).
        COMPLETED and FAILED with a webhook queue a delivery in the same transaction.
        When applied and `then_take` > 0, the same transaction also takes up to that many
        queued jobs of the job's endpoint for that worker, as `take` does (`taken`)."""

    async def progress(self, job_id: str, worker_id: str, output: Any) -> bool:
        """Store a progress update as the job's output; ignored unless IN_PROGRESS there."""

    async def append_stream(self, job_id: str, worker_id: str, chunk: Any) -> bool:
        """Append one streamed chunk; ignored unless the job is IN_PROGRESS on that worker."""

    async def read_stream(self, job_id: str) -> StreamRead | None:
        """Chunks that arrived since the previous read (a draining cursor), with the job."""

    async def cancel(self, job_id: str) -> tuple[Job | None, str | None]:
        """CANCEL a queued or running job. Returns the job and, if it was running, the worker
        that must be told to stop. A terminal job is returned unchanged."""

    async def retry(self, job_id: str) -> Job | None:
        """Requeue a FAILED or TIMED_OUT job with its id and input; raises Conflict otherwise."""

    async def purge_queue(self, endpoint: str) -> list[Job]:
        """Cancel every IN_QUEUE job of the endpoint; running jobs go on. Returns the jobs it
        cancelled (as they are now), so that their waiters can be woken."""

    async def requeue(self, job_id: str, worker_id: str) -> Job | None:
        """Put a job its worker lost back in the queue (retries + 1)."""

    async def fail(
        self, job_id: str, worker_id: str | None, error: str, status: JobStatus = JobStatus.FAILED
    ) -> Job | None:
        """End a running job with `status` (FAILED or TIMED_OUT) and an error, if it is still
        IN_PROGRESS (on `worker_id`, when given)."""

    async def running(self, endpoint: str | None = None) -> list[Job]:
        """Every IN_PROGRESS job."""

    async def overdue(self, now: float) -> list[Job]:
        """IN_PROGRESS jobs past their execution timeout or TTL at `now`."""

    async def expire_queued(self, now: float) -> list[Job]:
        """End every IN_QUEUE job past its TTL as TIMED_OUT; returns them."""

    async def delete_expired(self, now: float) -> int:
        """Delete ended jobs past their retention window, and idempotency keys older than
        24 h. Returns the count of jobs."""

    async def keep_async(self, job_id: str) -> None:
        """A runsync whose wait ran out: keep its result as long as an async job's."""

    async def counts(self, endpoint: str) -> dict[str, int]:
        """Jobs by status, plus `retried` (requeues after lost workers) for /health."""

    async def queue_depth(self, endpoint: str) -> int:
        """Number of IN_QUEUE jobs of the endpoint."""

    async def queue_stats(self, endpoint: str) -> QueueStats:
        """What the scaler reads each tick: queued and running counts, oldest queued job's
        created_at (None with an empty queue). Cheap: indexed, no scan of finished jobs."""

    async def queue_stats_many(self, endpoints: list[str]) -> dict[str, QueueStats]:
        """`queue_stats` of each endpoint, read in one round trip: what the scheduler's tick,
        /metrics and the dashboard read for every endpoint."""

    async def job_window(self, endpoint: str, since: float, until: float) -> JobWindow:
        """The endpoint's jobs that ended in (`since`, `until`]. An ended job's status and
        times are kept `runq.store.window.TIMES_KEEP_S` (24 h) after its end, although the job
        itself is deleted after its retention (a runsync result after 60 s). Cheap: reads only
        that window, by (endpoint, end time)."""

    async def ended_totals(self, endpoint: str) -> dict[JobStatus, int]:
        """Jobs of the endpoint that ever ended, by final status (COMPLETED, FAILED, CANCELLED,
        TIMED_OUT), counted in the same transaction as the change, so they never go down
        (retention deletes jobs, not these counts): what Prometheus counters need."""

    async def ended_totals_many(self, endpoints: list[str]) -> dict[str, dict[JobStatus, int]]:
        """`ended_totals` of each endpoint, read in one round trip (what /metrics reads)."""

    async def job_timings(self, endpoint: str, limit: int) -> list[JobTiming]:
        """The `limit` most recently finished jobs of the endpoint that a worker ran to the end
        (COMPLETED or FAILED, with a start time), most recent first, still retained."""

    async def recent_jobs(self, endpoint: str, limit: int) -> list[Job]:
        """The `limit` most recently created jobs of the endpoint still retained, in any
        status, newest first (ties in creation order, newest first). Read-only: what the
        dashboard's jobs table shows."""

    async def record_host_model(self, host: str, source: str) -> None:
        """Remember that `host` holds the model `source` in its cache (a worker pulled it
        there). Idempotent. Placement prefers such hosts; kept in the store so that a restarted
        or newly elected control plane knows it too."""

    async def host_models(self) -> dict[str, tuple[str, ...]]:
        """Every host's recorded models, sorted: host -> sources."""

    async def due_webhooks(self, now: float, limit: int) -> list[Webhook]:
        """Pending webhook deliveries whose time has come."""

    async def webhook_result(self, hook_id: int, delivered: bool, next_at: float | None) -> None:
        """Delivered, retry at `next_at`, or give up (`next_at` None)."""

    async def save_endpoint(self, name: str, path: str, toml: str) -> None:
        """Remember a deployed endpoint so that a restart serves it again."""

    async def endpoints(self) -> list[tuple[str, str, str]]:
        """Deployed endpoints as (name, path, toml)."""

    async def delete_endpoint(self, name: str) -> bool:
        """Forget a deployed endpoint (undeploy), durable before it returns, so a restart does
        not serve it again; its jobs stay until their retention. False: none of that name."""

    async def create_key(self, name: str, key_hash: str, scopes: tuple[str, ...]) -> ApiKey:
        """Store a new API key by its hash (never the key itself) with a fresh id and
        `created_at` from the store's clock, durable before it returns. A hash that is stored
        already raises Conflict."""

    async def api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        """Revoke a key from now on, durable before it returns; a revoked key keeps its first
        `revoked_at`. None for an unknown id."""


@runtime_checkable
class SharedStore(Protocol):
    """A store several `runq serve` replicas share (PostgreSQL): a lock elects the replica
    that runs the fleet, and hints tell each replica what the others did."""

    def leader_lock(self) -> LeaderLock: ...

    async def listen(
        self,
        on_work: Callable[[str], None],
        stop: asyncio.Event,
        on_stop: Callable[[str, str], None] | None = None,
        on_deploy: Callable[[str], None] | None = None,
    ) -> None: ...

    async def job_marks(self, job_ids: list[str]) -> dict[str, tuple[str, int, int]]:
        """For each job of `job_ids` in the store, a value that changes whenever a client
        waiting on it would see a change (its status, a retry, a new stream chunk)."""
        ...
