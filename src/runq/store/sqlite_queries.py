"""The SQLite store's SQL: named statements and the row-level steps the store's operations are
made of. Each function runs inside the transaction of the operation that calls it."""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterable
from typing import Any

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
from runq.store import window
from runq.store.base import JobWindow, QueueStats
from runq.store.rows import dumps, row_to_job
from runq.store.window import ENDED

INSERT = """
INSERT INTO jobs (id, endpoint, status, input, webhook, s3_config, low_priority,
                  execution_timeout_s, ttl_s, sync, created_at)
VALUES (?, ?, 'IN_QUEUE', ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING
"""


def insert_params(request: JobRequest, job_id: str, now: float) -> tuple[Any, ...]:
    """`INSERT`'s parameters for a new job."""
    return (
        job_id,
        request.endpoint,
        dumps(request.input),
        request.webhook,
        dumps(request.s3_config) if request.s3_config is not None else None,
        int(request.low_priority),
        request.execution_timeout_s,
        request.ttl_s,
        int(request.sync),
        now,
    )


# INDEXED BY: the queue's FIFO index, never the TTL deadline index that the same filter
# could tempt the planner into (a scan of every queued job of every endpoint).
TAKE = """
UPDATE jobs SET status = 'IN_PROGRESS', started_at = :now, worker_id = :worker
WHERE rowid IN (
    SELECT rowid FROM jobs INDEXED BY jobs_queue
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


# Kept by triggers on jobs (sqlite_schema.py, migration 5): a few rows, whatever the queue.
COUNTS = "SELECT status, n FROM job_counts WHERE endpoint = ?"
RUNNING_AND_QUEUED = """
SELECT status, n FROM job_counts WHERE endpoint = ? AND status IN ('IN_QUEUE', 'IN_PROGRESS')
"""
# The head of each priority lane, along the queue's index: FIFO order is creation order, but
# for a retried job (a new created_at where it stood), so this is the oldest but for those.
OLDEST_QUEUED = """
SELECT min(created_at) FROM (
    SELECT * FROM (SELECT created_at FROM jobs INDEXED BY jobs_queue
                   WHERE endpoint = :endpoint AND status = 'IN_QUEUE' AND low_priority = 0
                   ORDER BY rowid LIMIT 1)
    UNION ALL
    SELECT * FROM (SELECT created_at FROM jobs INDEXED BY jobs_queue
                   WHERE endpoint = :endpoint AND status = 'IN_QUEUE' AND low_priority = 1
                   ORDER BY rowid LIMIT 1))
"""

TIMINGS = """
SELECT id, status, created_at, started_at, finished_at FROM jobs
WHERE endpoint = ? AND status IN ('COMPLETED', 'FAILED') AND started_at IS NOT NULL
ORDER BY finished_at DESC LIMIT ?
"""

# rowid breaks ties in creation order (jobs created within one clock tick).
RECENT = """
SELECT * FROM jobs WHERE endpoint = ? ORDER BY created_at DESC, rowid DESC LIMIT ?
"""


def take(
    conn: sqlite3.Connection, endpoint: str, worker_id: str, limit: int, now: float
) -> list[Job]:
    params = {"now": now, "worker": worker_id, "endpoint": endpoint, "limit": max(0, limit)}
    rows = conn.execute(TAKE, params).fetchall()
    rows.sort(key=lambda row: (row["low_priority"], row["seq"]))  # RETURNING is unordered
    return [row_to_job(row) for row in rows]


def queue_stats(conn: sqlite3.Connection, endpoint: str) -> QueueStats:
    counts = dict.fromkeys(("IN_QUEUE", "IN_PROGRESS"), 0)
    for row in conn.execute(RUNNING_AND_QUEUED, (endpoint,)):
        counts[row["status"]] = int(row["n"])
    oldest = conn.execute(OLDEST_QUEUED, {"endpoint": endpoint}).fetchone()[0]
    return QueueStats(counts["IN_QUEUE"], counts["IN_PROGRESS"], oldest)


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
    if row is not None:
        record_ended(conn, [row])
    return row


def queue_webhook(conn: sqlite3.Connection, job: Job, now: float) -> None:
    if job.webhook and job.status in WEBHOOK_STATUSES:
        conn.execute(
            "INSERT INTO webhook_outbox (job_id, url, body, next_at) VALUES (?, ?, ?, ?)",
            (job.id, job.webhook, dumps(job.to_webhook()), now),
        )


def bump(conn: sqlite3.Connection, endpoint: str, name: str, by: int = 1) -> None:
    conn.execute(
        "INSERT INTO counters (endpoint, name, value) VALUES (?, ?, ?) "
        "ON CONFLICT (endpoint, name) DO UPDATE SET value = value + excluded.value",
        (endpoint, name, by),
    )


def record_ended(conn: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> None:
    """Jobs that just ended (rows of `jobs` after the change), in the same transaction: count
    them by final status, and keep their times for metrics windows."""
    rows = list(rows)
    tally = collections.Counter((row["endpoint"], row["status"]) for row in rows)
    for (endpoint, status), n in tally.items():
        bump(conn, endpoint, ENDED + status, n)
    conn.executemany(RECORD_TIMES, [_times(row) for row in rows])


RECORD_TIMES = """
INSERT INTO job_times (endpoint, finished_at, job_id, status, created_at, started_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING
"""


def _times(row: sqlite3.Row) -> tuple[Any, ...]:
    return (
        row["endpoint"],
        row["finished_at"],
        row["id"],
        row["status"],
        row["created_at"],
        row["started_at"],
    )


def prune_times(conn: sqlite3.Connection, before: float) -> None:
    """Forget times of jobs that ended at or before `before`, endpoint by endpoint along the
    primary key: an index on finished_at alone would cost a third of the store's take+finish
    throughput. Every endpoint with times has an ended: counter, a small table to list."""
    for (endpoint,) in conn.execute(
        "SELECT DISTINCT endpoint FROM counters WHERE name LIKE 'ended:%'"
    ).fetchall():
        conn.execute(
            "DELETE FROM job_times WHERE endpoint = ? AND finished_at <= ?", (endpoint, before)
        )


WINDOW = """
SELECT status, created_at, started_at, finished_at FROM job_times
WHERE endpoint = ? AND finished_at > ? AND finished_at <= ?
"""


def job_window(conn: sqlite3.Connection, endpoint: str, since: float, until: float) -> JobWindow:
    return window.summarise(conn.execute(WINDOW, (endpoint, since, until)), since, until)


def ended_totals(conn: sqlite3.Connection, endpoint: str) -> dict[JobStatus, int]:
    result = dict.fromkeys(window.ENDED_STATUSES, 0)
    for row in conn.execute(
        "SELECT name, value FROM counters WHERE endpoint = ? AND name LIKE 'ended:%'", (endpoint,)
    ):
        status = JobStatus(row["name"].removeprefix(ENDED))
        result[status] = row["value"]
    return result


# --- idempotency keys -----------------------------------------------------------------------
SAVE_KEY = """
INSERT INTO idempotency_keys (owner, endpoint, key, fingerprint, job_id, created_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (owner, endpoint, key) DO UPDATE SET
    fingerprint = excluded.fingerprint, job_id = excluded.job_id, created_at = excluded.created_at
"""
# The final status of a job deleted after its retention: its times are kept 24 h after its end,
# so at least as long as its key (kept 24 h after its submission).
ENDED_AS = """
SELECT status FROM job_times WHERE endpoint = ? AND finished_at >= ? AND job_id = ?
ORDER BY finished_at DESC LIMIT 1
"""


def replay(conn: sqlite3.Connection, key: IdempotencyKey, since: float) -> Submission | None:
    """The submission `key` names if it was made after `since`, with its job as it is now;
    None for a key not seen (or older: its row is replaced by the caller's `SAVE_KEY`).

    Raises:
        IdempotencyMismatch: the key named a different request.
    """
    found = conn.execute(
        "SELECT fingerprint, job_id, created_at FROM idempotency_keys "
        "WHERE owner = ? AND endpoint = ? AND key = ? AND created_at > ?",
        (key.owner, key.endpoint, key.key, since),
    ).fetchone()
    if found is None:
        return None
    if found["fingerprint"] != key.fingerprint:
        raise IdempotencyMismatch(mismatch_message(key))
    job_id = found["job_id"]
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is not None:
        return Submission(job_id, row_to_job(row), replayed=True)
    ended = conn.execute(ENDED_AS, (key.endpoint, found["created_at"], job_id)).fetchone()
    return Submission(
        job_id, None, replayed=True, ended_as=JobStatus(ended["status"]) if ended else None
    )


def save_key(conn: sqlite3.Connection, key: IdempotencyKey, job_id: str, now: float) -> None:
    conn.execute(SAVE_KEY, (key.owner, key.endpoint, key.key, key.fingerprint, job_id, now))
