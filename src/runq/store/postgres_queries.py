"""The PostgreSQL store's SQL: named statements and the row-level steps its operations are made
of. Each function runs inside the transaction of the operation that calls it (as
sqlite_queries.py does for SQLite)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from runq.core.idempotency import IdempotencyKey, Submission, mismatch_message
from runq.core.job import (
    RETENTION_ASYNC_S,
    RETENTION_SYNC_S,
    WEBHOOK_STATUSES,
    Job,
    JobRequest,
    JobStatus,
)
from runq.errors import IdempotencyMismatch
from runq.store.postgres_schema import MIGRATIONS
from runq.store.rows import dumps, row_to_job

Conn = AsyncConnection[DictRow]


async def one(conn: Conn, sql: str, params: Any = None) -> DictRow | None:
    return await (await conn.execute(sql, params)).fetchone()


async def all_rows(conn: Conn, sql: str, params: Any = None) -> list[DictRow]:
    return await (await conn.execute(sql, params)).fetchall()


async def notify(conn: Conn, channel: str, payload: str) -> None:
    """A hint to the other replicas, sent when this transaction commits."""
    await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


# pg_advisory_xact_lock key for migrations: any constant no other runq lock uses.
MIGRATION_LOCK = 0x72756E71  # "runq"

TAKE = """
UPDATE jobs SET status = 'IN_PROGRESS', started_at = %(now)s, worker_id = %(worker)s
WHERE id IN (
    SELECT id FROM jobs
    WHERE endpoint = %(endpoint)s AND status = 'IN_QUEUE' AND created_at + ttl_s > %(now)s
    ORDER BY low_priority, seq LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING *
"""
FINISH = """
UPDATE jobs SET status = %(status)s, finished_at = %(now)s, has_output = %(has_output)s,
       output = %(output)s, error = %(error)s,
       expires_at = %(now)s + CASE WHEN sync THEN %(sync_keep)s ELSE %(async_keep)s END
WHERE id = %(id)s AND status = 'IN_PROGRESS' AND worker_id = %(worker)s
RETURNING *
"""
END = """
UPDATE jobs SET status = %(status)s, finished_at = %(now)s, error = coalesce(%(error)s, error),
       expires_at = %(now)s + CASE WHEN sync THEN %(sync_keep)s ELSE %(async_keep)s END
WHERE id = %(id)s AND status = ANY(%(states)s) AND (%(worker)s::text IS NULL
                                                    OR worker_id = %(worker)s)
RETURNING *
"""
REQUEUE = """
UPDATE jobs SET status = 'IN_QUEUE', started_at = NULL, worker_id = NULL,
       retries = retries + 1, has_output = FALSE, output = NULL
WHERE id = %s AND status = 'IN_PROGRESS' AND worker_id = %s
RETURNING *
"""
RETRY = """
UPDATE jobs SET status = 'IN_QUEUE', started_at = NULL, finished_at = NULL, worker_id = NULL,
       has_output = FALSE, output = NULL, error = NULL, expires_at = NULL, stream_read = 0,
       created_at = %(now)s, retries = 0, seq = nextval('jobs_seq_seq')
WHERE id = %(id)s AND status IN ('FAILED', 'TIMED_OUT')
RETURNING *
"""
# Counts kept by triggers (postgres_schema.py, migrations 4 and 5: summed over their slots);
# the oldest queued job is the older of the heads of the two priority lanes (FIFO order by seq
# is creation order: a retry takes a new seq).
QUEUE_STATS = """
SELECT
    coalesce((SELECT sum(n) FROM job_counts
              WHERE endpoint = %(endpoint)s AND status = 'IN_QUEUE'), 0) AS queued,
    coalesce((SELECT sum(n) FROM job_counts
              WHERE endpoint = %(endpoint)s AND status = 'IN_PROGRESS'), 0) AS running,
    least(
        (SELECT created_at FROM jobs
         WHERE endpoint = %(endpoint)s AND status = 'IN_QUEUE' AND low_priority = FALSE
         ORDER BY seq LIMIT 1),
        (SELECT created_at FROM jobs
         WHERE endpoint = %(endpoint)s AND status = 'IN_QUEUE' AND low_priority = TRUE
         ORDER BY seq LIMIT 1)) AS oldest
"""
# QUEUE_STATS for many endpoints in one statement.
QUEUE_STATS_MANY = """
SELECT e.endpoint,
    coalesce((SELECT sum(n) FROM job_counts
              WHERE endpoint = e.endpoint AND status = 'IN_QUEUE'), 0) AS queued,
    coalesce((SELECT sum(n) FROM job_counts
              WHERE endpoint = e.endpoint AND status = 'IN_PROGRESS'), 0) AS running,
    least(
        (SELECT created_at FROM jobs
         WHERE endpoint = e.endpoint AND status = 'IN_QUEUE' AND low_priority = FALSE
         ORDER BY seq LIMIT 1),
        (SELECT created_at FROM jobs
         WHERE endpoint = e.endpoint AND status = 'IN_QUEUE' AND low_priority = TRUE
         ORDER BY seq LIMIT 1)) AS oldest
FROM unnest(%(endpoints)s::text[]) AS e(endpoint)
"""
# A new job, and the hint to the other replicas (sent at commit), in one statement; no row
# if the id exists already.
INSERT_AND_NOTIFY = """
WITH inserted AS (
    INSERT INTO jobs (id, endpoint, status, input, webhook, s3_config, low_priority,
                      execution_timeout_s, ttl_s, sync, created_at)
    VALUES (%s, %s, 'IN_QUEUE', %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (id) DO NOTHING
    RETURNING *)
SELECT inserted.*, pg_notify(%s, inserted.endpoint)::text AS notified FROM inserted
"""
# What a waiting client would notice of each job (PostgresAdmin.job_marks).
JOB_MARKS = """
SELECT j.id, j.status, j.seq,
    coalesce((SELECT max(c.seq) FROM stream_chunks c WHERE c.job_id = j.id), 0) AS chunks
FROM jobs j WHERE j.id = ANY(%s)
"""


def insert_params(request: JobRequest, job_id: str, now: float) -> tuple[Any, ...]:
    """`INSERT`'s parameters for a new job."""
    return (
        job_id,
        request.endpoint,
        dumps(request.input),
        request.webhook,
        dumps(request.s3_config) if request.s3_config is not None else None,
        request.low_priority,
        request.execution_timeout_s,
        request.ttl_s,
        request.sync,
        now,
    )


async def migrate(conn: Conn) -> None:
    # Replicas may start together: one migrates while the others wait on the lock.
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    await conn.execute("CREATE TABLE IF NOT EXISTS runq_schema (version INTEGER NOT NULL)")
    row = await (await conn.execute("SELECT max(version) AS v FROM runq_schema")).fetchone()
    version = int(row["v"]) if row and row["v"] is not None else 0
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the database schema is version {version}, newer than this runq "
            f"({len(MIGRATIONS)}): upgrade runq"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await conn.execute(script.encode())  # bytes: sent as one simple query, many statements
        await conn.execute("INSERT INTO runq_schema (version) VALUES (%s)", (number,))


async def get(conn: Conn, job_id: str) -> Job | None:
    row = await (await conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,))).fetchone()
    return row_to_job(row) if row is not None else None


async def take(conn: Conn, endpoint: str, worker_id: str, limit: int, now: float) -> list[Job]:
    params = {"now": now, "worker": worker_id, "endpoint": endpoint, "limit": max(0, limit)}
    rows = await (await conn.execute(TAKE, params)).fetchall()
    rows.sort(key=lambda row: (row["low_priority"], row["seq"]))  # RETURNING is unordered
    return [row_to_job(row) for row in rows]


async def queue_full(conn: Conn, endpoint: str, job_id: str, max_queue: int) -> bool:
    """See `sqlite_queries.queue_full`: a known id is never refused; the count stops at the
    limit."""
    known = await (await conn.execute("SELECT 1 FROM jobs WHERE id = %s", (job_id,))).fetchone()
    if known is not None:
        return False
    row = await (
        await conn.execute(
            "SELECT count(*) AS n FROM (SELECT 1 FROM jobs WHERE endpoint = %s "
            "AND status = 'IN_QUEUE' LIMIT %s) AS queued",
            (endpoint, max_queue),
        )
    ).fetchone()
    return row is not None and int(row["n"]) >= max_queue


async def end(
    conn: Conn,
    job_id: str,
    status: JobStatus,
    now: float,
    error: str | None,
    from_states: tuple[str, ...],
    worker_id: str | None = None,
) -> DictRow | None:
    params = {
        "id": job_id,
        "status": status.value,
        "now": now,
        "error": error,
        "states": list(from_states),
        "worker": worker_id,
        "sync_keep": RETENTION_SYNC_S,
        "async_keep": RETENTION_ASYNC_S,
    }
    return await (await conn.execute(END, params)).fetchone()


async def bump(conn: Conn, endpoint: str, name: str, by: int = 1) -> None:
    await conn.execute(
        "INSERT INTO counters (endpoint, name, slot, value) VALUES (%s, %s, runq_slot(), %s) "
        "ON CONFLICT (endpoint, name, slot) DO UPDATE SET value = counters.value + excluded.value",
        (endpoint, name, by),
    )


async def queue_webhook(conn: Conn, job: Job, now: float) -> None:
    if job.webhook and job.status in WEBHOOK_STATUSES:
        await conn.execute(
            "INSERT INTO webhook_outbox (job_id, url, body, next_at) VALUES (%s, %s, %s, %s)",
            (job.id, job.webhook, dumps(job.to_webhook()), now),
        )


# --- idempotency keys -----------------------------------------------------------------------
# Takes the key for a new job: a new key, or one older than the cutoff (kept 24 h, then free).
# A live key's row is left as it is, and nothing is returned.
CLAIM_KEY = """
INSERT INTO idempotency_keys (owner, endpoint, key, fingerprint, job_id, created_at)
VALUES (%(owner)s, %(endpoint)s, %(key)s, %(fingerprint)s, %(job_id)s, %(now)s)
ON CONFLICT (owner, endpoint, key) DO UPDATE SET
    fingerprint = excluded.fingerprint, job_id = excluded.job_id, created_at = excluded.created_at
WHERE idempotency_keys.created_at <= %(cutoff)s
RETURNING job_id
"""
# See sqlite_queries.ENDED_AS.
ENDED_AS = """
SELECT status FROM job_times WHERE endpoint = %s AND finished_at >= %s AND job_id = %s
ORDER BY finished_at DESC LIMIT 1
"""


async def claim_key(
    conn: Conn, key: IdempotencyKey, job_id: str, now: float, cutoff: float
) -> bool:
    """Did this transaction take `key` for `job_id`? False: a live key names another job."""
    params = {
        "owner": key.owner,
        "endpoint": key.endpoint,
        "key": key.key,
        "fingerprint": key.fingerprint,
        "job_id": job_id,
        "now": now,
        "cutoff": cutoff,
    }
    return await one(conn, CLAIM_KEY, params) is not None


async def replay(conn: Conn, key: IdempotencyKey, since: float) -> Submission:
    """The submission a live `key` names (one `claim_key` could not take), with its job now.

    Raises:
        IdempotencyMismatch: the key named a different request.
    """
    found = await one(
        conn,
        "SELECT fingerprint, job_id, created_at FROM idempotency_keys "
        "WHERE owner = %s AND endpoint = %s AND key = %s AND created_at > %s",
        (key.owner, key.endpoint, key.key, since),
    )
    if found is None:  # claim_key saw it live under this transaction: it cannot be gone
        raise RuntimeError(f"idempotency key {key.key!r} vanished during its replay")
    if found["fingerprint"] != key.fingerprint:
        raise IdempotencyMismatch(mismatch_message(key))
    job_id = found["job_id"]
    job = await get(conn, job_id)
    if job is not None:
        return Submission(job_id, job, replayed=True)
    ended = await one(conn, ENDED_AS, (key.endpoint, found["created_at"], job_id))
    return Submission(
        job_id, None, replayed=True, ended_as=JobStatus(ended["status"]) if ended else None
    )
