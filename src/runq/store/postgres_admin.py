"""The PostgreSQL store's reads and records around the jobs: counts and windows (what /health,
/metrics, the dashboard and the scheduler read), hosts' models, the webhook outbox, deployed
endpoints, API keys, and what replicas share (the leader lock, hints, waited jobs' marks).

`runq.store.postgres.PostgresJobStore` adds the job queue's operations to these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from runq.core.job import Job, JobStatus
from runq.core.keys import ApiKey, new_key_id
from runq.errors import Conflict
from runq.store import postgres_queries as q
from runq.store import window
from runq.store.base import JobTiming, JobWindow, QueueStats, Webhook
from runq.store.leader import LeaderLock
from runq.store.postgres_listen import DEPLOY_CHANNEL, listen
from runq.store.postgres_pool import PostgresPools
from runq.store.rows import dumps, job_timing, row_to_job, row_to_key
from runq.store.window import ENDED


class PostgresAdmin(PostgresPools):
    """See `runq.store.base.JobStore` for each method's contract."""

    # --- counts and windows -------------------------------------------------------------
    async def counts(self, endpoint: str) -> dict[str, int]:
        result = {status.value: 0 for status in JobStatus}
        for row in await self._all(
            "SELECT status, sum(n) AS n FROM job_counts WHERE endpoint = %s GROUP BY status",
            (endpoint,),
        ):
            result[row["status"]] = int(row["n"])
        retried = await self._one(
            "SELECT coalesce(sum(value), 0) AS value FROM counters "
            "WHERE endpoint = %s AND name = 'retried'",
            (endpoint,),
        )
        result["retried"] = int(retried["value"]) if retried else 0
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
        return (await self.ended_totals_many([endpoint]))[endpoint]

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
        # finished_at IS NOT NULL: the index of ended jobs by finish time holds only those.
        rows = await self._all(
            "SELECT id, status, created_at, started_at, finished_at FROM jobs "
            "WHERE endpoint = %s AND finished_at IS NOT NULL AND started_at IS NOT NULL "
            "AND status IN ('COMPLETED', 'FAILED') ORDER BY finished_at DESC LIMIT %s",
            (endpoint, max(0, limit)),
        )
        return [job_timing(row) for row in rows]

    async def recent_jobs(self, endpoint: str, limit: int) -> list[Job]:
        rows = await self._all(
            "SELECT * FROM jobs WHERE endpoint = %s ORDER BY created_at DESC, seq DESC LIMIT %s",
            (endpoint, max(0, limit)),
        )
        return [row_to_job(row) for row in rows]

    # --- hosts --------------------------------------------------------------------------
    async def record_host_model(self, host: str, source: str) -> None:
        async with self._autocommit(durable=False) as conn:
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
        async with self._autocommit() as conn:
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
        async with self._autocommit() as conn:
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

    async def job_marks(self, job_ids: list[str]) -> dict[str, tuple[str, int, int]]:
        """What a waiting client would notice of each job: (status, queue sequence number,
        stream chunks written). A job not in the store is left out."""
        if not job_ids:
            return {}
        rows = await self._all(q.JOB_MARKS, (list(job_ids),))
        return {row["id"]: (row["status"], int(row["seq"]), int(row["chunks"])) for row in rows}
