"""The default JobStore: one SQLite file in WAL mode, written by one thread with group commit.

This module holds the job queue's operations; the connection, migrations and the reads and
records around the jobs (counts, windows, endpoints, keys, webhooks) are
`runq.store.sqlite_admin`.
"""

from __future__ import annotations

import json
import sqlite3
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
from runq.store import sqlite_queries as q
from runq.store.base import FinishOutcome, StreamRead
from runq.store.rows import dumps, new_job_id, row_to_job
from runq.store.sqlite_admin import SqliteAdmin
from runq.store.window import TIMES_KEEP_S


class SqliteJobStore(SqliteAdmin):
    """JobStore on one SQLite file. See `runq.store.base.JobStore` for each method's contract."""

    # --- clients ------------------------------------------------------------------------
    async def enqueue(self, request: JobRequest, max_queue: int = 0) -> Job:
        job_id = request.id or new_job_id(request.sync)
        now = self._clock()
        params = q.insert_params(request, job_id, now)

        def op(conn: sqlite3.Connection) -> Job | None:
            if max_queue > 0 and q.queue_full(conn, request.endpoint, job_id, max_queue):
                return None  # not raised here: a failed operation makes its batch run again
            conn.execute(q.INSERT, params)
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return row_to_job(row)

        job = await self._db.run(op)
        if job is None:
            raise QueueFull(
                f"endpoint '{request.endpoint}' has {max_queue} jobs queued, its max_queue: "
                "try again later"
            )
        return job

    async def enqueue_once(
        self, request: JobRequest, key: IdempotencyKey, max_queue: int = 0
    ) -> Submission:
        job_id = request.id or new_job_id(request.sync)
        now = self._clock()
        params = q.insert_params(request, job_id, now)

        def op(conn: sqlite3.Connection) -> Submission | None:
            # One writer: the look-up and the insert cannot interleave with another's.
            replayed = q.replay(conn, key, now - KEEP_S)
            if replayed is not None:
                return replayed
            if max_queue > 0 and q.queue_full(conn, request.endpoint, job_id, max_queue):
                return None
            conn.execute(q.INSERT, params)
            q.save_key(conn, key, job_id, now)
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return Submission(job_id, row_to_job(row), replayed=False)

        submission = await self._db.run(op)
        if submission is None:
            raise QueueFull(
                f"endpoint '{request.endpoint}' has {max_queue} jobs queued, its max_queue: "
                "try again later"
            )
        return submission

    async def get(self, job_id: str) -> Job | None:
        def op(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return row_to_job(row) if row is not None else None

        return await self._db.run(op, durable=False)

    async def cancel(self, job_id: str) -> tuple[Job | None, str | None]:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> tuple[Job | None, str | None]:
            before = conn.execute(
                "SELECT status, worker_id FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if before is None:
                return None, None
            row = q.end(conn, job_id, JobStatus.CANCELLED, now, None, ("IN_QUEUE", "IN_PROGRESS"))
            if row is None:
                current = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                return row_to_job(current), None
            was_running = before["status"] == "IN_PROGRESS"
            return row_to_job(row), before["worker_id"] if was_running else None

        return await self._db.run(op)

    async def retry(self, job_id: str) -> Job | None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> Job | None:
            current = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if current is None:
                return None
            row = conn.execute(q.RETRY, {"id": job_id, "now": now}).fetchone()
            if row is None:
                raise Conflict(
                    f"job {job_id} is {current['status']}: only FAILED or TIMED_OUT jobs "
                    "can be retried"
                )
            conn.execute("DELETE FROM stream_chunks WHERE job_id = ?", (job_id,))
            return row_to_job(row)

        return await self._db.run(op)

    async def purge_queue(self, endpoint: str) -> list[Job]:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                "UPDATE jobs SET status = 'CANCELLED', finished_at = ?, error = 'purged', "
                "expires_at = ? + CASE sync WHEN 1 THEN ? ELSE ? END "
                "WHERE endpoint = ? AND status = 'IN_QUEUE' RETURNING *",
                (now, now, RETENTION_SYNC_S, RETENTION_ASYNC_S, endpoint),
            ).fetchall()
            q.record_ended(conn, rows)
            return [row_to_job(row) for row in rows]

        return await self._db.run(op)

    async def keep_async(self, job_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE jobs SET sync = 0, expires_at = CASE WHEN finished_at IS NULL THEN NULL "
                "ELSE finished_at + ? END WHERE id = ?",
                (RETENTION_ASYNC_S, job_id),
            )

        await self._db.run(op)

    async def read_stream(self, job_id: str) -> StreamRead | None:
        def op(conn: sqlite3.Connection) -> StreamRead | None:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            chunks = conn.execute(
                "SELECT seq, output FROM stream_chunks WHERE job_id = ? AND seq > ? ORDER BY seq",
                (job_id, row["stream_read"]),
            ).fetchall()
            if chunks:
                conn.execute(
                    "UPDATE jobs SET stream_read = ? WHERE id = ?", (chunks[-1]["seq"], job_id)
                )
            return StreamRead(row_to_job(row), [json.loads(c["output"]) for c in chunks])

        return await self._db.run(op, durable=False)

    # --- workers ------------------------------------------------------------------------
    async def take(self, endpoint: str, worker_id: str, limit: int) -> list[Job]:
        now = self._clock()
        return await self._db.run(lambda c: q.take(c, endpoint, worker_id, limit, now), False)

    async def finish(
        self, job_id: str, worker_id: str, result: WorkerResult, then_take: int = 0
    ) -> FinishOutcome:
        now = self._clock()
        params = {
            "id": job_id,
            "worker": worker_id,
            "now": now,
            "status": result.status.value,
            "has_output": int(result.has_output),
            "output": dumps(result.output) if result.has_output else None,
            "error": result.error,
            "sync_keep": RETENTION_SYNC_S,
            "async_keep": RETENTION_ASYNC_S,
        }

        def op(conn: sqlite3.Connection) -> FinishOutcome:
            row = conn.execute(q.FINISH, params).fetchone()
            if row is None:
                current = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                return FinishOutcome(row_to_job(current) if current else None, applied=False)
            job = row_to_job(row)
            q.record_ended(conn, [row])
            q.queue_webhook(conn, job, now)
            taken = q.take(conn, job.endpoint, worker_id, then_take, now) if then_take > 0 else []
            return FinishOutcome(job, applied=True, taken=taken)

        return await self._db.run(op, durable=False)

    async def progress(self, job_id: str, worker_id: str, output: Any) -> bool:
        encoded = dumps(output)

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE jobs SET has_output = 1, output = ? "
                "WHERE id = ? AND status = 'IN_PROGRESS' AND worker_id = ?",
                (encoded, job_id, worker_id),
            )
            return cursor.rowcount == 1

        return await self._db.run(op, durable=False)

    async def append_stream(self, job_id: str, worker_id: str, chunk: Any) -> bool:
        encoded = dumps(chunk)

        def op(conn: sqlite3.Connection) -> bool:
            holder = conn.execute(
                "SELECT 1 FROM jobs WHERE id = ? AND status = 'IN_PROGRESS' AND worker_id = ?",
                (job_id, worker_id),
            ).fetchone()
            if holder is None:
                return False
            conn.execute(
                "INSERT INTO stream_chunks (job_id, seq, output) SELECT ?, coalesce(max(seq), 0) "
                "+ 1, ? FROM stream_chunks WHERE job_id = ?",
                (job_id, encoded, job_id),
            )
            return True

        return await self._db.run(op, durable=False)

    # --- fleet and reaper ---------------------------------------------------------------
    async def requeue(self, job_id: str, worker_id: str) -> Job | None:
        def op(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(q.REQUEUE, (job_id, worker_id)).fetchone()
            if row is None:
                return None
            q.bump(conn, row["endpoint"], "retried")
            return row_to_job(row)

        return await self._db.run(op)

    async def fail(
        self, job_id: str, worker_id: str | None, error: str, status: JobStatus = JobStatus.FAILED
    ) -> Job | None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> Job | None:
            row = q.end(conn, job_id, status, now, error, ("IN_PROGRESS",), worker_id)
            if row is None:
                return None
            job = row_to_job(row)
            q.queue_webhook(conn, job, now)
            return job

        return await self._db.run(op)

    async def running(self, endpoint: str | None = None) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            if endpoint is None:
                rows = conn.execute("SELECT * FROM jobs WHERE status = 'IN_PROGRESS'").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM jobs WHERE status = 'IN_PROGRESS' AND endpoint = ?",
                    (endpoint,),
                ).fetchall()
            return [row_to_job(row) for row in rows]

        return await self._db.run(op, durable=False)

    async def overdue(self, now: float) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE status = 'IN_PROGRESS' AND ("
                "(execution_timeout_s IS NOT NULL AND started_at + execution_timeout_s <= ?) "
                "OR created_at + ttl_s <= ?)",
                (now, now),
            ).fetchall()
            return [row_to_job(row) for row in rows]

        return await self._db.run(op, durable=False)

    async def expire_queued(self, now: float) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                "UPDATE jobs SET status = 'TIMED_OUT', finished_at = :now, "
                "error = 'ttl expired before a worker took the job', "
                "expires_at = :now + CASE sync WHEN 1 THEN :sync_keep ELSE :async_keep END "
                "WHERE rowid IN (SELECT rowid FROM jobs INDEXED BY jobs_queue_deadline "
                "WHERE status = 'IN_QUEUE' AND created_at + ttl_s <= :now) RETURNING *",
                {"now": now, "sync_keep": RETENTION_SYNC_S, "async_keep": RETENTION_ASYNC_S},
            ).fetchall()
            q.record_ended(conn, rows)
            return [row_to_job(row) for row in rows]

        return await self._db.run(op)

    async def delete_expired(self, now: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            conn.execute(
                "DELETE FROM stream_chunks WHERE job_id IN "
                "(SELECT id FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?)",
                (now,),
            )
            cursor = conn.execute(
                "DELETE FROM jobs WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            q.prune_times(conn, now - TIMES_KEEP_S)
            conn.execute("DELETE FROM idempotency_keys WHERE created_at <= ?", (now - KEEP_S,))
            return cursor.rowcount

        return await self._db.run(op)
