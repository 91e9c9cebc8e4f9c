"""Posting results (job-done) and stream chunks (job-stream), with retries.

Unlike runpod, connection errors are retried as well as 5xx: the control plane may be
restarting, and it treats job-done as idempotent, so a duplicate is harmless but a lost
result leaves the job to the reaper.

Against a runq control plane (known from its first answer, which carries `jobs`), results
travel in groups: while one post is in flight, the results that finish meanwhile queue up and
go together in the next one (job-done-batch), and every post asks for the next jobs
(`take`). Short jobs then cost a fraction of a round trip each instead of two.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runq.worker import results
from runq.worker.aioconn import AsyncConn
from runq.worker.backoff import post_delays
from runq.worker.logs import log
from runq.worker.results import Body
from runq.worker.settings import Settings
from runq.worker.transport import NETWORK_ERRORS, Reply

MAX_GROUP = 64  # results per job-done-batch (the server's cap too)
GROUP_ITEM_LIMIT = 64 * 1024  # larger results go alone, as plain job-done posts

Jobs = list[dict[str, Any]]


def _future() -> asyncio.Future[bool]:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Result:
    job_id: str
    data: bytes
    is_stream: bool
    posted: asyncio.Future[bool] = field(default_factory=_future)


class Poster:
    """Sends results in the order they finish, over one connection.

    Args:
        wanted: how many jobs to ask for with the next result post (0: none).
        deliver: receives the jobs a result post brought back.
    """

    def __init__(
        self,
        settings: Settings,
        conn: AsyncConn,
        wanted: Callable[[], int] = lambda: 0,
        deliver: Callable[[Jobs], None] = lambda jobs: None,
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.wanted = wanted
        self.deliver = deliver
        self.asked = 0  # jobs asked for by the post in flight
        self.groups = False  # the server answered with `jobs`: it is runq, it takes groups
        self._queue: list[_Result] = []
        self._sender: asyncio.Task[None] | None = None

    async def done(self, job_id: str, body: Body, is_stream: bool) -> bool:
        """Posts the final body of a job; True when the server took it."""
        try:
            data = results.encode(body)
        except (TypeError, ValueError) as exc:
            log.error(f"Result is not JSON serializable: {exc}", job_id)
            data = results.encode(results.unencodable_body(exc))
        item = _Result(job_id, data, is_stream)
        self._queue.append(item)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all(), name="runq-result-poster")
        return await asyncio.shield(item.posted)

    async def chunk(self, job_id: str, chunk: Any) -> bool:
        """Posts one streamed chunk as `{"output": chunk}`."""
        try:
            data = results.encode({"output": chunk})
        except (TypeError, ValueError) as exc:
            log.error(f"Stream chunk is not JSON serializable, skipped: {exc}", job_id)
            return False
        return await self._post(self.settings.stream(job_id), data, job_id) is not None

    async def _send_all(self) -> None:
        while self._queue:
            group = self._next_group()
            take = max(0, self.wanted())
            self.asked = take
            try:
                reply = await self._send(group, take)
            except BaseException:
                for item in group:
                    if not item.posted.done():
                        item.posted.set_result(False)
                raise
            finally:
                self.asked = 0
            jobs = next_jobs(reply.body) if reply is not None and take > 0 else []
            if reply is not None and take > 0 and not self.groups:
                self.groups = _speaks_runq(reply.body)
            for item in group:
                if not item.posted.done():
                    item.posted.set_result(reply is not None)
            if jobs:
                self.deliver(jobs)

    def _next_group(self) -> list[_Result]:
        """The queued results for the next post: one, or as many small ones as may go together."""
        first = self._queue.pop(0)
        if not self.groups or first.is_stream or len(first.data) > GROUP_ITEM_LIMIT:
            return [first]
        group = [first]
        while self._queue and len(group) < MAX_GROUP:
            item = self._queue[0]
            if item.is_stream or len(item.data) > GROUP_ITEM_LIMIT:
                break
            group.append(self._queue.pop(0))
        return group

    async def _send(self, group: list[_Result], take: int) -> Reply | None:
        if len(group) == 1:
            item = group[0]
            url = self.settings.done(item.job_id, item.is_stream, take)
            return await self._post(url, item.data, item.job_id)
        body = b"[" + b",".join(_group_item(item) for item in group) + b"]"
        ids = ",".join(item.job_id for item in group)
        return await self._post(self.settings.done_group(take), body, ids)

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


def _group_item(item: _Result) -> bytes:
    return b'{"id":' + json.dumps(item.job_id).encode() + b',"result":' + item.data + b"}"


def _speaks_runq(body: bytes) -> bool:
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        return False
    return isinstance(payload, dict) and isinstance(payload.get("jobs"), list)


def next_jobs(body: bytes) -> Jobs:
    """The jobs under `jobs` in a job-done reply (runq's extension); [] for anything else."""
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        return []
    jobs = payload.get("jobs") if isinstance(payload, dict) else None
    return [job for job in jobs if isinstance(job, dict)] if isinstance(jobs, list) else []
