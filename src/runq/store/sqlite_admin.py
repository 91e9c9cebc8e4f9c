"""The SQLite store's connection and the reads and records around the jobs: counts and
windows (what /health, /metrics, the dashboard and the scheduler read), hosts' models, the
webhook outbox, deployed endpoints and API keys.

`runq.store.sqlite.SqliteJobStore` adds the job queue's operations to these.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from runq.core.job import Job, JobStatus
from runq.core.keys import ApiKey, new_key_id
from runq.errors import Conflict
from runq.store import sqlite_queries as q
from runq.store.base import JobTiming, JobWindow, QueueStats, Webhook
from runq.store.rows import dumps, job_timing, row_to_job, row_to_key
from runq.store.sqlite_executor import SqliteExecutor
from runq.store.sqlite_schema import MIGRATIONS

Clock = Callable[[], float]


class SqliteAdmin:
    """One SQLite file, opened and migrated. See `runq.store.base.JobStore` for each method's
    contract."""

    def __init__(self, path: Path | str, clock: Clock = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._db = SqliteExecutor(self.path)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db.start()
        await self._db.run(_migrate)

    async def close(self) -> None:
        await self._db.stop()

    # --- counts and windows -------------------------------------------------------------
    async def counts(self, endpoint: str) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            result = {status.value: 0 for status in JobStatus}
            for row in conn.execute(q.COUNTS, (endpoint,)):
                result[row["status"]] = row["n"]
            retried = conn.execute(
                "SELECT value FROM counters WHERE endpoint = ? AND name = 'retried'", (endpoint,)
            ).fetchone()
            result["retried"] = retried["value"] if retried else 0
            return result

        return await self._db.run(op, durable=False)

    async def queue_depth(self, endpoint: str) -> int:
        return (await self.queue_stats(endpoint)).in_queue

    async def queue_stats(self, endpoint: str) -> QueueStats:
        return await self._db.run(lambda c: q.queue_stats(c, endpoint), durable=False)

    async def queue_stats_many(self, endpoints: list[str]) -> dict[str, QueueStats]:
        def op(conn: sqlite3.Connection) -> dict[str, QueueStats]:
            return {name: q.queue_stats(conn, name) for name in endpoints}

        return await self._db.run(op, durable=False)

    async def job_window(self, endpoint: str, since: float, until: float) -> JobWindow:
        return await self._db.run(lambda c: q.job_window(c, endpoint, since, until), False)

    async def ended_totals(self, endpoint: str) -> dict[JobStatus, int]:
        return await self._db.run(lambda c: q.ended_totals(c, endpoint), False)

    async def ended_totals_many(self, endpoints: list[str]) -> dict[str, dict[JobStatus, int]]:
        def op(conn: sqlite3.Connection) -> dict[str, dict[JobStatus, int]]:
            return {name: q.ended_totals(conn, name) for name in endpoints}

        return await self._db.run(op, durable=False)

    async def job_timings(self, endpoint: str, limit: int) -> list[JobTiming]:
        def op(conn: sqlite3.Connection) -> list[JobTiming]:
            rows = conn.execute(q.TIMINGS, (endpoint, max(0, limit))).fetchall()
            return [job_timing(row) for row in rows]

        return await self._db.run(op, durable=False)

    async def recent_jobs(self, endpoint: str, limit: int) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(q.RECENT, (endpoint, max(0, limit))).fetchall()
            return [row_to_job(row) for row in rows]

        return await self._db.run(op, durable=False)

    # --- hosts --------------------------------------------------------------------------
    async def record_host_model(self, host: str, source: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO host_models (host, source) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (host, source),
            )

        await self._db.run(op, durable=False)

    async def host_models(self) -> dict[str, tuple[str, ...]]:
        def op(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
            rows = conn.execute("SELECT host, source FROM host_models ORDER BY host, source")
            found: dict[str, list[str]] = {}
            for row in rows:
                found.setdefault(row["host"], []).append(row["source"])
            return {host: tuple(sources) for host, sources in found.items()}

        return await self._db.run(op, durable=False)

    # --- webhooks -----------------------------------------------------------------------
    async def due_webhooks(self, now: float, limit: int) -> list[Webhook]:
        def op(conn: sqlite3.Connection) -> list[Webhook]:
            rows = conn.execute(
                "SELECT id, job_id, url, body, attempts FROM webhook_outbox WHERE next_at <= ? "
                "ORDER BY next_at LIMIT ?",
                (now, limit),
            ).fetchall()
            return [Webhook(r["id"], r["job_id"], r["url"], r["body"], r["attempts"]) for r in rows]

        return await self._db.run(op, durable=False)

    async def webhook_result(self, hook_id: int, delivered: bool, next_at: float | None) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if delivered or next_at is None:
                conn.execute("DELETE FROM webhook_outbox WHERE id = ?", (hook_id,))
            else:
                conn.execute(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, next_at = ? WHERE id = ?",
                    (next_at, hook_id),
                )

        await self._db.run(op)

    # --- endpoints ----------------------------------------------------------------------
    async def save_endpoint(self, name: str, path: str, toml: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO endpoints (name, path, toml) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET path = excluded.path, toml = excluded.toml",
                (name, path, toml),
            )

        await self._db.run(op)

    async def endpoints(self) -> list[tuple[str, str, str]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            rows = conn.execute("SELECT name, path, toml FROM endpoints ORDER BY name").fetchall()
            return [(r["name"], r["path"], r["toml"]) for r in rows]

        return await self._db.run(op, durable=False)

    async def delete_endpoint(self, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM endpoints WHERE name = ?", (name,)).rowcount == 1

        return await self._db.run(op)

    # --- API keys -----------------------------------------------------------------------
    async def create_key(self, name: str, key_hash: str, scopes: tuple[str, ...]) -> ApiKey:
        key = ApiKey(new_key_id(), name, key_hash, tuple(scopes), self._clock())

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (key.id, key.name, key.hash, dumps(list(key.scopes)), key.created_at),
            )
            return cursor.rowcount == 1

        if not await self._db.run(op):
            raise Conflict("an API key with that hash (or id) exists already")
        return key

    async def api_keys(self) -> list[ApiKey]:
        def op(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute("SELECT * FROM api_keys ORDER BY created_at, rowid").fetchall()
            return [row_to_key(row) for row in rows]

        return await self._db.run(op, durable=False)

    async def revoke_key(self, key_id: str) -> ApiKey | None:
        now = self._clock()

        def op(conn: sqlite3.Connection) -> ApiKey | None:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            return row_to_key(row) if row is not None else None

        return await self._db.run(op)


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> list[str]:
    """The statements of a migration script, in order. A trigger's body holds `;` too, so a
    statement ends at the first `;` where SQLite sees a complete statement."""
    statements: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    return statements
