"""A purge ends queued jobs in one statement: the clients waiting on them (/runsync,
/status-sync, /stream) must answer at once, not when their wait runs out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runq.core.config import ServerConfig
from runq.core.job import JobRequest, JobStatus
from runq.server.services import Services
from runq.store.sqlite import SqliteJobStore

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Services]:
    store = SqliteJobStore(tmp_path / "runq.db")
    await store.open()
    yield Services(ServerConfig(data_dir=tmp_path), store, "secret")
    await store.close()


async def test_clients_waiting_on_purged_jobs_answer_at_once(plane: Services) -> None:
    jobs = [
        await plane.jobs.submit(JobRequest(endpoint="echo", input=i, sync=True)) for i in range(3)
    ]
    waits = [asyncio.create_task(plane.jobs.wait_for(job.id, 60)) for job in jobs]
    stream = asyncio.create_task(plane.jobs.read_stream(jobs[0].id, 60))
    for _ in range(2):  # two store round trips: the waiters have read their queued jobs
        await plane.jobs.get(jobs[0].id)

    assert await plane.jobs.purge("echo") == 3

    ended = await asyncio.wait_for(asyncio.gather(*waits), 5)
    assert [job.status if job else None for job in ended] == [JobStatus.CANCELLED] * 3
    read = await asyncio.wait_for(stream, 5)
    assert read is not None and read.job.status is JobStatus.CANCELLED
