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
- Worker operations (take, finish, progress, stream) commit with `synchronous_commit = off`:
  the same trade as the SQLite store's relaxed sync (a crash can lose the last few tens of
  milliseconds of them, which costs a re-run of a job, never an accepted job). Client
  operations wait for the flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from runq.core.idempotency import KEEP_S, IdempotencyKey, Submission
from runq.core.job import (
    RETENTION_ASYNC_S,
    RETENTION_SYNC_S,
    Job,
    JobRequest,
    JobStatus,
    WorkerResult,
)
from runq.core.keys import ApiKey, new_key_id
from runq.errors import Conflict, QueueFull
from runq.store import postgres_queries as q
from runq.store import window
from runq.store.base import FinishOutcome, JobTiming, JobWindow, QueueStats, StreamRead, Webhook
from runq.store.leader import LeaderLock
from runq.store.postgres_listen import DEPLOY_CHANNEL, STOP_CHANNEL, WORK_CHANNEL, listen
from runq.store.rows import dumps, job_timing, new_job_id, row_to_job, row_to_key
from runq.store.window import ENDED

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Conn = q.Conn


class PostgresJobStore:
    """JobStore on PostgreSQL. See `runq.store.base.JobStore` for each method's contract.

    `dsn` is a libpq connection string or URL (postgresql://user@host:5432/db).
    """

    def __init__(self, dsn: str, clock: Clock = time.time, pool_size: int = 8) -> None:
        self.dsn = dsn
        self._clock = clock
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
            connection_class=AsyncConnection[DictRow],
        )

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=15)
        except psycopg.Error as exc:
            raise ConnectionError(f"cannot connect to PostgreSQL at {self.dsn}: {exc}") from exc
        async with self._tx() as conn:
            await q.migrate(conn)

    async def close(self) -> None:
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _tx(self, durable: bool = True) -> AsyncIterator[Conn]:
        async with self._pool.connection() as conn, conn.transaction():
            if not durable:
                await conn.execute("SET LOCAL synchronous_commit = off")
            yield conn

    async def _one(self, sql: str, params: Any = None) -> DictRow | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()

    async def _all(self, sql: str, params: Any = None) -> list[DictRow]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

    # --- clients ------------------------------------------------------------------------
    async def enqueue(self, request: JobRequest, max_queue: int = 0) -> Job:
        job_id = request.id or new_job_id(request.sync)
        async with self._tx() as conn:
            return await self._insert(conn, request, job_id, self._clock(), max_queue)

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
        inserted = await conn.execute(q.INSERT, q.insert_params(request, job_id, now))
        if inserted.rowcount == 1:
            await q.notify(conn, WORK_CHANNEL, request.endpoint)
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
            await q.count_ended(conn, rows)
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

    async def counts(self, endpoint: str) -> dict[str, int]:
        result = {status.value: 0 for status in JobStatus}
        for row in await self._all(
            "SELECT status, sum(n) AS n FROM job_counts WHERE endpoint = %s GROUP BY status",
            (endpoint,),
        ):
            result[row["status"]] = int(row["n"])
        retried = await self._one(
            "SELECT sum(value) AS value FROM counters WHERE endpoint = %s AND name = 'retried'",
            (endpoint,),
        )
        result["retried"] = int(retried["value"]) if retried and retried["value"] is not None else 0
        return result

    async def queue_depth(self, endpoint: str) -> int:
        return (await self.queue_stats(endpoint)).in_queue

    async def queue_stats(self, endpoint: str) -> QueueStats:
        row = await self._one(q.QUEUE_STATS, {"endpoint": endpoint})
        assert row is not None
        return QueueStats(int(row["queued"]), int(row["running"]), row["oldest"])

    async def queue_stats_many(self, endpoints: list[str]) -> dict[str, QueueStats]:
        stats = dict.fromkeys(endpoints, QueueStats(0, 0, None))
        if endpoints:
            for row in await self._all(q.QUEUE_STATS_MANY, {"endpoints": list(endpoints)}):
                stats[row["endpoint"]] = QueueStats(
                    int(row["queued"]), int(row["running"]), row["oldest"]
                )
        return stats

    async def job_window(self, endpoint: str, since: float, until: float) -> JobWindow:
        rows = await self._all(
            "SELECT status, created_at, started_at, finished_at FROM job_times "
            "WHERE endpoint = %s AND finished_at > %s AND finished_at <= %s",
            (endpoint, since, until),
        )
        return window.summarise(rows, since, until)

    async def ended_totals(self, endpoint: str) -> dict[JobStatus, int]:
        result = dict.fromkeys(window.ENDED_STATUSES, 0)
        for row in await self._all(
            "SELECT name, sum(value) AS value FROM counters "
            "WHERE endpoint = %s AND name LIKE 'ended:%%' GROUP BY name",
            (endpoint,),
        ):
            result[JobStatus(row["name"].removeprefix(ENDED))] = int(row["value"])
        return result

    async def ended_totals_many(self, endpoints: list[str]) -> dict[str, dict[JobStatus, int]]:
        result = {name: dict.fromkeys(window.ENDED_STATUSES, 0) for name in endpoints}
        if endpoints:
            for row in await self._all(
                "SELECT endpoint, name, sum(value) AS value FROM counters "
                "WHERE endpoint = ANY(%s) AND name LIKE 'ended:%%' GROUP BY endpoint, name",
                (list(endpoints),),
            ):
                status = JobStatus(row["name"].removeprefix(ENDED))
                result[row["endpoint"]][status] = int(row["value"])
        return result

    async def job_timings(self, endpoint: str, limit: int) -> list[JobTiming]:
        rows = await self._all(
            "SELECT id, status, created_at, started_at, finished_at FROM jobs "
            "WHERE endpoint = %s AND status IN ('COMPLETED', 'FAILED') AND started_at IS NOT NULL "
            "AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT %s",
            (endpoint, max(0, limit)),
        )
        return [job_timing(row) for row in rows]

    async def recent_jobs(self, endpoint: str, limit: int) -> list[Job]:
        rows = await self._all(
            "SELECT * FROM jobs WHERE endpoint = %s ORDER BY created_at DESC, seq DESC LIMIT %s",
            (endpoint, max(0, limit)),
        )
        return [row_to_job(row) for row in rows]

    # --- workers ------------------------------------------------------------------------
    async def take(self, endpoint: str, worker_id: str, limit: int) -> list[Job]:
        now = self._clock()
        async with self._tx(durable=False) as conn:
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
            await q.count_ended(conn, [row])
            await q.queue_webhook(conn, job, now)
            taken = await q.take(conn, job.endpoint, worker_id, then_take, now) if then_take else []
            return FinishOutcome(job, applied=True, taken=taken)

    async def progress(self, job_id: str, worker_id: str, output: Any) -> bool:
        async with self._tx(durable=False) as conn:
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
            await q.count_ended(conn, rows)
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

    # --- hosts --------------------------------------------------------------------------
    async def record_host_model(self, host: str, source: str) -> None:
        async with self._tx(durable=False) as conn:
            await conn.execute(
                "INSERT INTO host_models (host, source) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (host, source),
            )

    async def host_models(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for row in await self._all("SELECT host, source FROM host_models ORDER BY host, source"):
            found.setdefault(row["host"], []).append(row["source"])
        return {host: tuple(sources) for host, sources in found.items()}

    # --- webhooks -----------------------------------------------------------------------
    async def due_webhooks(self, now: float, limit: int) -> list[Webhook]:
        rows = await self._all(
            "SELECT id, job_id, url, body, attempts FROM webhook_outbox WHERE next_at <= %s "
            "ORDER BY next_at, id LIMIT %s",
            (now, limit),
        )
        return [Webhook(r["id"], r["job_id"], r["url"], r["body"], r["attempts"]) for r in rows]

    async def webhook_result(self, hook_id: int, delivered: bool, next_at: float | None) -> None:
        async with self._tx() as conn:
            if delivered or next_at is None:
                await conn.execute("DELETE FROM webhook_outbox WHERE id = %s", (hook_id,))
            else:
                await conn.execute(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, next_at = %s WHERE id = %s",
                    (next_at, hook_id),
                )

    # --- endpoints ----------------------------------------------------------------------
    async def save_endpoint(self, name: str, path: str, toml: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO endpoints (name, path, toml) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET path = excluded.path, toml = excluded.toml",
                (name, path, toml),
            )
            await q.notify(conn, DEPLOY_CHANNEL, name)

    async def endpoints(self) -> list[tuple[str, str, str]]:
        rows = await self._all("SELECT name, path, toml FROM endpoints ORDER BY name")
        return [(r["name"], r["path"], r["toml"]) for r in rows]

    async def delete_endpoint(self, name: str) -> bool:
        async with self._tx() as conn:
            cursor = await conn.execute("DELETE FROM endpoints WHERE name = %s", (name,))
            await q.notify(conn, DEPLOY_CHANNEL, name)  # the other replicas stop serving it
            return cursor.rowcount == 1

    # --- API keys -----------------------------------------------------------------------
    async def create_key(self, name: str, key_hash: str, scopes: tuple[str, ...]) -> ApiKey:
        key = ApiKey(new_key_id(), name, key_hash, tuple(scopes), self._clock())
        async with self._tx() as conn:
            cursor = await conn.execute(
                "INSERT INTO api_keys (id, name, hash, scopes, created_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (key.id, key.name, key.hash, dumps(list(key.scopes)), key.created_at),
            )
            if cursor.rowcount != 1:
                raise Conflict("an API key with that hash (or id) exists already")
        return key

    async def api_keys(self) -> list[ApiKey]:
        rows = await self._all("SELECT * FROM api_keys ORDER BY created_at, seq")
        return [row_to_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (now, key_id),
            )
            row = await q.one(conn, "SELECT * FROM api_keys WHERE id = %s", (key_id,))
            return row_to_key(row) if row is not None else None

    # --- replicas -----------------------------------------------------------------------
    def leader_lock(self) -> LeaderLock:
        """The lock whose holder runs the fleet (see runq.store.leader)."""
        return LeaderLock(self.dsn)

    async def listen(
        self,
        on_work: Callable[[str], None],
        stop: asyncio.Event,
        on_stop: Callable[[str, str], None] | None = None,
        on_deploy: Callable[[str], None] | None = None,
    ) -> None:
        """What the other replicas did, as hints: see runq.store.postgres_listen."""
        await listen(self.dsn, stop, on_work, on_stop, on_deploy)
