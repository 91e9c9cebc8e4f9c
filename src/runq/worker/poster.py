"""Posting results (job-done) and stream chunks (job-stream), with retries.

Unlike runpod, connection errors are retried as well as 5xx: the control plane may be
restarting, and it treats job-done as idempotent, so a duplicate is harmless but a lost
result leaves the job to the reaper.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from runq.worker import results
from runq.worker.aioconn import AsyncConn
from runq.worker.backoff import post_delays
from runq.worker.logs import log
from runq.worker.results import Body
from runq.worker.settings import Settings
from runq.worker.transport import NETWORK_ERRORS, Reply


class Poster:
    """Sends bodies for jobs over one connection, in the order they are awaited."""

    def __init__(self, settings: Settings, conn: AsyncConn) -> None:
        self.settings = settings
        self.conn = conn

    async def done(
        self, job_id: str, body: Body, is_stream: bool, take: int = 0
    ) -> list[dict[str, Any]]:
        """Posts the final body of a job; returns the next jobs the server handed over with its
        answer (only when `take` > 0 and the server is runq; [] otherwise or on failure)."""
        try:
            data = results.encode(body)
        except (TypeError, ValueError) as exc:
            log.error(f"Result is not JSON serializable: {exc}", job_id)
            data = results.encode(results.unencodable_body(exc))
        reply = await self._post(self.settings.done(job_id, is_stream, take), data, job_id)
        if reply is None or take <= 0:
            return []
        return next_jobs(reply.body)

    async def chunk(self, job_id: str, chunk: Any) -> bool:
        """Posts one streamed chunk as `{"output": chunk}`."""
        try:
            data = results.encode({"output": chunk})
        except (TypeError, ValueError) as exc:
            log.error(f"Stream chunk is not JSON serializable, skipped: {exc}", job_id)
            return False
        return await self._post(self.settings.stream(job_id), data, job_id) is not None

    async def _post(self, url: str, data: bytes, job_id: str) -> Reply | None:
        """The server's reply once it took the body; None when it refused or never answered."""
        delays = post_delays()
        for attempt, delay in enumerate([*delays, None], start=1):
            try:
                reply = await self.conn.request("POST", url, data)
            except NETWORK_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= reply.status < 300:
                    return reply
                reason = f"HTTP {reply.status} {reply.body[:200]!r}"
                if reply.status < 500 and reply.status != 429:
                    log.error(f"Failed to return job results. | {reason}", job_id)
                    return None  # the server refused it for good (e.g. too large, unknown job)
            if delay is None:
                break
            log.warn(f"Posting result failed (attempt {attempt}), retrying: {reason}", job_id)
            await asyncio.sleep(delay)
        log.error(f"Failed to return job results. | {reason}", job_id)
        return None


def next_jobs(body: bytes) -> list[dict[str, Any]]:
    """The jobs under `jobs` in a job-done reply (runq's extension); [] for anything else."""
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        return []
    jobs = payload.get("jobs") if isinstance(payload, dict) else None
    return [job for job in jobs if isinstance(job, dict)] if isinstance(jobs, list) else []
