"""Rows to domain objects, shared by the SQLite and PostgreSQL stores.

Both keep JSON as TEXT and times as epoch seconds, so one conversion serves both; a row is
anything indexable by column name (sqlite3.Row, psycopg's dict rows).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

from runq.core.job import Job, JobStatus
from runq.core.keys import ApiKey
from runq.store.base import JobTiming


class Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def row_to_job(row: Row) -> Job:
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


def row_to_key(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        hash=row["hash"],
        scopes=tuple(json.loads(row["scopes"])),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def job_timing(row: Row) -> JobTiming:
    return JobTiming(
        id=row["id"],
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def new_job_id(sync: bool) -> str:
    """RunPod's shape: a uuid4 with a region suffix; `sync-` in front for /runsync (spec 1.3)."""
    return f"{'sync-' if sync else ''}{uuid.uuid4()}-u1"
