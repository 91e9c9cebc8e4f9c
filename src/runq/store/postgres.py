"""The JobStore on PostgreSQL (psycopg 3), for a control plane past one machine.

Same contract as the SQLite store (`runq.store.base.JobStore`, `tests/store/test_contract.py`
runs against both). What PostgreSQL changes:

- Several `runq serve` replicas share the database, so every state change is one statement
  guarded by the state it expects, and `take` claims rows with `FOR UPDATE SKIP LOCKED`: two
  replicas handing out jobs never hand out the same one, and never wait on each other.
- `max_queue` counts and inserts under a transaction-scoped advisory lock on the endpoint, so
  the limit holds across replicas.
- A new job sends `NOTIFY runq_work, '<endpoint>'` in its transaction: a replica holding a
  worker's long-poll learns of work queued through another replica (`listen`). NOTIFY is only
  a hint (it takes a global lock at commit, and a listener can miss one while reconnecting), so
  long-polls still re-check the queue on their own.
- Worker operations (take, finish, progress, stream) commit with `synchronous_commit = off`
  (`runq.store.postgres_pool`). Client operations wait for the flush.
- Counts by status, ended-job totals and ended jobs' times are kept by triggers in the
  transaction of each change (`postgres_schema.py`, migrations 4 and 5).

This module holds the job queue's operations; the reads and records around them (counts,
windows, endpoints, keys, webhooks, replicas) are `runq.store.postgres_admin`.
"""

from __future__ import annotations

import json
from typing import Any

from runq.core.idempotency import KEEP_S, IdempotencyKey, Submission
from runq.core.job import (
    RETENTION_ASYNC_S,
    RETENTION_SYNC_S,
    Job,
    JobRequest,
    JobStatus,
    WorkerResult,
)
from runq.errors import Conflict, QueueFull
from runq.store import postgres_queries as q
from runq.store import window
from runq.store.base import FinishOutcome, StreamRead
from runq.store.postgres_admin import PostgresAdmin
from runq.store.postgres_listen import STOP_CHANNEL, WORK_CHANNEL
from runq.store.rows import dumps, new_job_id, row_to_job

Conn = q.Conn


class PostgresJobStore(PostgresAdmin):
    """JobStore on PostgreSQL. See `runq.store.base.JobStore` for each method's contract.

    `dsn` is a libpq connection string or URL (postgresql://user@host:5432/db).
    """

    # --- clients ------------------------------------------------------------------------
    async def enqueue(self, request: JobRequest, max_queue: int = 0) -> Job:
        job_id = request.id or new_job_id(request.sync)
        if max_queue > 0:
            async with self._tx() as conn:
                return await self._insert(conn, request, job_id, self._clock(), max_queue)
        async with self._autocommit() as conn:  # insert and hint in one statement
            return await self._insert(conn, request, job_id, self._clock(), 0)

    async def enqueue_once(
        self, request: JobRequest, key: IdempotencyKey, max_queue: int = 0
    ) -> Submission:
        job_id = request.id or new_job_id(request.sync)
        now = self._clock()
        async with self._tx() as conn:
            # Claiming the key first serialises replicas racing on it: the second one's claim
            # waits for the first's transaction, then finds the key taken (or, if the first
            # rolled back, claims it).
            if not await q.claim_key(conn, key, job_id, now, now - KEEP_S):
                return await q.replay(conn, key, now - KEEP_S)
            job = await self._insert(conn, request, job_id, now, max_queue)
            return Submission(job.id, job, replayed=False)

    async def _insert(
        self, conn: Conn, request: JobRequest, job_id: str, now: float, max_queue: int
    ) -> Job:
        if max_queue > 0:
            # Replicas enqueue concurrently: the count and the insert must be one step.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (request.endpoint,)
            )
            if await q.queue_full(conn, request.endpoint, job_id, max_queue):
                raise QueueFull(
                    f"endpoint '{request.endpoint}' has {max_queue} jobs queued, its "
                    "max_queue: try again later"
                )
        params = (*q.insert_params(request, job_id, now), WORK_CHANNEL)
        row = await q.one(conn, q.INSERT_AND_NOTIFY, params)
        if row is None:  # a job with this id exists (the client chose it): that job, as it is
            row = await q.one(conn, "SELECT * FROM jobs WHERE id = %s", (job_id,))
        assert row is not None
        return row_to_job(row)

    async def get(self, job_id: str) -> Job | None:
        row = await self._one("SELECT * FROM jobs WHERE id = %s", (job_id,))
        return row_to_job(row) if row is not None else None

    async def cancel(self, job_id: str) -> tuple[Job | None, str | None]:
        now = self._clock()
        async with self._tx() as conn:
            before = await q.one(
                conn, "SELECT status, worker_id FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
            )
            if before is None:
                return None, None
            row = await q.end(
                conn, job_id, JobStatus.CANCELLED, now, None, ("IN_QUEUE", "IN_PROGRESS")
            )
            if row is None:
                current = await q.get(conn, job_id)
                return current, None
            was_running = before["status"] == "IN_PROGRESS"
            if was_running:  # the replica whose worker runs it tells that worker to stop
                payload = f"{before['worker_id']} {job_id}"
                await q.notify(conn, STOP_CHANNEL, payload)
            return row_to_job(row), before["worker_id"] if was_running else None

    async def retry(self, job_id: str) -> Job | None:
        now = self._clock()
        async with self._tx() as conn:
            current = await q.one(conn, "SELECT status FROM jobs WHERE id = %s", (job_id,))
            if current is None:
                return None
            row = await q.one(conn, q.RETRY, {"id": job_id, "now": now})
            if row is None:
                raise Conflict(
                    f"job {job_id} is {current['status']}: only FAILED or TIMED_OUT jobs "
                    "can be retried"
                )
            await conn.execute("DELETE FROM stream_chunks WHERE job_id = %s", (job_id,))
            await q.notify(conn, WORK_CHANNEL, row["endpoint"])
            return row_to_job(row)

    async def purge_queue(self, endpoint: str) -> list[Job]:
        now = self._clock()
        async with self._tx() as conn:
            rows = await q.all_rows(
                conn,
                "UPDATE jobs SET status = 'CANCELLED', finished_at = %(now)s, error = 'purged', "
                "expires_at = %(now)s + CASE WHEN sync THEN %(sync_keep)s "
                "ELSE %(async_keep)s END "
                "WHERE endpoint = %(endpoint)s AND status = 'IN_QUEUE' RETURNING *",
                {
                    "now": now,
                    "sync_keep": RETENTION_SYNC_S,
                    "async_keep": RETENTION_ASYNC_S,
                    "endpoint": endpoint,
                },
            )
            return [row_to_job(row) for row in rows]

    async def keep_async(self, job_id: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE jobs SET sync = FALSE, expires_at = CASE WHEN finished_at IS NULL "
                "THEN NULL ELSE finished_at + %s END WHERE id = %s",
                (RETENTION_ASYNC_S, job_id),
            )

    async def read_stream(self, job_id: str) -> StreamRead | None:
        async with self._tx(durable=False) as conn:
            row = await q.one(conn, "SELECT * FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
            if row is None:
                return None
            chunks = await q.all_rows(
                conn,
                "SELECT seq, output FROM stream_chunks WHERE job_id = %s AND seq > %s ORDER BY seq",
                (job_id, row["stream_read"]),
            )
            if chunks:
                await conn.execute(
                    "UPDATE jobs SET stream_read = %s WHERE id = %s", (chunks[-1]["seq"], job_id)
                )
            return StreamRead(row_to_job(row), [json.loads(c["output"]) for c in chunks])

    # --- workers ------------------------------------------------------------------------
    async def take(self, endpoint: str, worker_id: str, limit: int) -> list[Job]:
        now = self._clock()
        async with self._autocommit(durable=False) as conn:
            return await q.take(conn, endpoint, worker_id, limit, now)

    async def finish(
        self, job_id: str, worker_id: str, result: WorkerResult, then_take: int = 0
    ) -> FinishOutcome:
        now = self._clock()
        params = {
            "id": job_id,
            "worker": worker_id,
            "now": now,
            "status": result.status.value,
            "has_output": result.has_output,
            "output": dumps(result.output) if result.has_output else None,
            "error": result.error,
            "sync_keep": RETENTION_SYNC_S,
            "async_keep": RETENTION_ASYNC_S,
        }
        async with self._tx(durable=False) as conn:
            row = await q.one(conn, q.FINISH, params)
            if row is None:
                return FinishOutcome(await q.get(conn, job_id), applied=False)
            job = row_to_job(row)
            await q.queue_webhook(conn, job, now)
            taken = await q.take(conn, job.endpoint, worker_id, then_take, now) if then_take else []
            return FinishOutcome(job, applied=True, taken=taken)

    async def progress(self, job_id: str, worker_id: str, output: Any) -> bool:
        async with self._autocommit(durable=False) as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET has_output = TRUE, output = %s "
                "WHERE id = %s AND status = 'IN_PROGRESS' AND worker_id = %s",
                (dumps(output), job_id, worker_id),
            )
            return cursor.rowcount == 1

    async def append_stream(self, job_id: str, worker_id: str, chunk: Any) -> bool:
        async with self._tx(durable=False) as conn:
            # The row lock orders two appends of one job (one worker, but maybe two requests).
            holder = await q.one(
                conn,
                "SELECT 1 FROM jobs WHERE id = %s AND status = 'IN_PROGRESS' "
                "AND worker_id = %s FOR UPDATE",
                (job_id, worker_id),
            )
            if holder is None:
                return False
            await conn.execute(
                "INSERT INTO stream_chunks (job_id, seq, output) SELECT %s, coalesce(max(seq), 0) "
                "+ 1, %s FROM stream_chunks WHERE job_id = %s",
                (job_id, dumps(chunk), job_id),
            )
            return True

    # --- fleet and reaper ---------------------------------------------------------------
    async def requeue(self, job_id: str, worker_id: str) -> Job | None:
        async with self._tx() as conn:
            row = await q.one(conn, q.REQUEUE, (job_id, worker_id))
            if row is None:
                return None
            await q.bump(conn, row["endpoint"], "retried")
            await q.notify(conn, WORK_CHANNEL, row["endpoint"])
            return row_to_job(row)

    async def fail(
        self, job_id: str, worker_id: str | None, error: str, status: JobStatus = JobStatus.FAILED
    ) -> Job | None:
        now = self._clock()
        async with self._tx() as conn:
            row = await q.end(conn, job_id, status, now, error, ("IN_PROGRESS",), worker_id)
            if row is None:
                return None
            job = row_to_job(row)
            await q.queue_webhook(conn, job, now)
            return job

    async def running(self, endpoint: str | None = None) -> list[Job]:
        if endpoint is None:
            rows = await self._all("SELECT * FROM jobs WHERE status = 'IN_PROGRESS'")
        else:
            rows = await self._all(
                "SELECT * FROM jobs WHERE status = 'IN_PROGRESS' AND endpoint = %s", (endpoint,)
            )
        return [row_to_job(row) for row in rows]

    async def overdue(self, now: float) -> list[Job]:
        rows = await self._all(
            "SELECT * FROM jobs WHERE status = 'IN_PROGRESS' AND ("
            "(execution_timeout_s IS NOT NULL AND started_at + execution_timeout_s <= %s) "
            "OR created_at + ttl_s <= %s)",
            (now, now),
        )
        return [row_to_job(row) for row in rows]

    async def expire_queued(self, now: float) -> list[Job]:
        async with self._tx() as conn:
            rows = await q.all_rows(
                conn,
                "UPDATE jobs SET status = 'TIMED_OUT', finished_at = %(now)s, "
                "error = 'ttl expired before a worker took the job', "
                "expires_at = %(now)s + CASE WHEN sync THEN %(sync_keep)s "
                "ELSE %(async_keep)s END "
                "WHERE id IN (SELECT id FROM jobs WHERE status = 'IN_QUEUE' "
                "AND created_at + ttl_s <= %(now)s) RETURNING *",
                {"now": now, "sync_keep": RETENTION_SYNC_S, "async_keep": RETENTION_ASYNC_S},
            )
            return [row_to_job(row) for row in rows]

    async def delete_expired(self, now: float) -> int:
        async with self._tx() as conn:
            await conn.execute(
                "DELETE FROM stream_chunks WHERE job_id IN "
                "(SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= %s)",
                (now,),
            )
            cursor = await conn.execute(
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= %s", (now,)
            )
            await conn.execute(
                "DELETE FROM job_times WHERE finished_at <= %s", (now - window.TIMES_KEEP_S,)
            )
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE created_at <= %s", (now - KEEP_S,)
            )
            return cursor.rowcount
