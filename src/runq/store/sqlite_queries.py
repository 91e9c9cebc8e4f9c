"""The SQLite store's SQL: named statements and the row-level steps the store's operations are
made of. Each function runs inside the transaction of the operation that calls it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from runq.core.job import (
    RETENTION_ASYNC_S,
    RETENTION_SYNC_S,
    WEBHOOK_STATUSES,
    Job,
    JobStatus,
)
from runq.core.keys import ApiKey

INSERT = """
INSERT INTO jobs (id, endpoint, status, input, webhook, s3_config, low_priority,
                  execution_timeout_s, ttl_s, sync, created_at)
VALUES (?, ?, 'IN_QUEUE', ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING
"""
TAKE = """
UPDATE jobs SET status = 'IN_PROGRESS', started_at = :now, worker_id = :worker
WHERE rowid IN (
    SELECT rowid FROM jobs
    WHERE endpoint = :endpoint AND status = 'IN_QUEUE' AND created_at + ttl_s > :now
    ORDER BY low_priority, rowid LIMIT :limit)
RETURNING rowid AS seq, *
"""
FINISH = """
UPDATE jobs SET status = :status, finished_at = :now, has_output = :has_output,
       output = :output, error = :error, expires_at = :now + CASE sync WHEN 1 THEN :sync_keep
                                                                  ELSE :async_keep END
WHERE id = :id AND status = 'IN_PROGRESS' AND worker_id = :worker
RETURNING *
"""
END = """
UPDATE jobs SET status = :status, finished_at = :now, error = coalesce(:error, error),
       expires_at = :now + CASE sync WHEN 1 THEN :sync_keep ELSE :async_keep END
WHERE id = :id AND status IN ({states}) {worker_guard}
RETURNING *
"""
REQUEUE = """
UPDATE jobs SET status = 'IN_QUEUE', started_at = NULL, worker_id = NULL,
       retries = retries + 1, has_output = 0, output = NULL
WHERE id = ? AND status = 'IN_PROGRESS' AND worker_id = ?
RETURNING *
"""
RETRY = """
UPDATE jobs SET status = 'IN_QUEUE', started_at = NULL, finished_at = NULL, worker_id = NULL,
       has_output = 0, output = NULL, error = NULL, expires_at = NULL, stream_read = 0,
       created_at = :now, retries = 0
WHERE id = :id AND status IN ('FAILED', 'TIMED_OUT')
RETURNING *
"""


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        endpoint=row["endpoint"],
        status=JobStatus(row["status"]),
        input=json.loads(row["input"]),
        created_at=row["created_at"],
        webhook=row["webhook"],
        s3_config=json.loads(row["s3_config"]) if row["s3_config"] is not None else None,
        low_priority=bool(row["low_priority"]),
        execution_timeout_s=row["execution_timeout_s"],
        ttl_s=row["ttl_s"],
        sync=bool(row["sync"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        worker_id=row["worker_id"],
        has_output=bool(row["has_output"]),
        output=json.loads(row["output"]) if row["output"] is not None else None,
        error=row["error"],
        retries=row["retries"],
    )


def take(
    conn: sqlite3.Connection, endpoint: str, worker_id: str, limit: int, now: float
) -> list[Job]:
    params = {"now": now, "worker": worker_id, "endpoint": endpoint, "limit": max(0, limit)}
    rows = conn.execute(TAKE, params).fetchall()
    rows.sort(key=lambda row: (row["low_priority"], row["seq"]))  # RETURNING is unordered
    return [row_to_job(row) for row in rows]


def row_to_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        hash=row["hash"],
        scopes=tuple(json.loads(row["scopes"])),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def queue_full(conn: sqlite3.Connection, endpoint: str, job_id: str, max_queue: int) -> bool:
    """Does the endpoint hold `max_queue` queued jobs already? A known id is never refused
    (enqueue is idempotent). The count stops at the limit: its cost is bounded by it."""
    if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None:
        return False
    row = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE endpoint = ? AND status = 'IN_QUEUE' "
        "LIMIT ?)",
        (endpoint, max_queue),
    ).fetchone()
    return int(row[0]) >= max_queue


def end(
    conn: sqlite3.Connection,
    job_id: str,
    status: JobStatus,
    now: float,
    error: str | None,
    from_states: tuple[str, ...],
    worker_id: str | None = None,
) -> sqlite3.Row | None:
    states = ", ".join(f"'{state}'" for state in from_states)
    guard = "AND worker_id = :worker" if worker_id is not None else ""
    params = {
        "id": job_id,
        "status": status.value,
        "now": now,
        "error": error,
        "worker": worker_id,
        "sync_keep": RETENTION_SYNC_S,
        "async_keep": RETENTION_ASYNC_S,
    }
    row: sqlite3.Row | None = conn.execute(
        END.format(states=states, worker_guard=guard), params
    ).fetchone()
    return row


def queue_webhook(conn: sqlite3.Connection, job: Job, now: float) -> None:
    if job.webhook and job.status in WEBHOOK_STATUSES:
        conn.execute(
            "INSERT INTO webhook_outbox (job_id, url, body, next_at) VALUES (?, ?, ?, ?)",
            (job.id, job.webhook, dumps(job.to_webhook()), now),
        )


def bump(conn: sqlite3.Connection, endpoint: str, name: str) -> None:
    conn.execute(
        "INSERT INTO counters (endpoint, name, value) VALUES (?, ?, 1) "
        "ON CONFLICT (endpoint, name) DO UPDATE SET value = value + 1",
        (endpoint, name),
    )
