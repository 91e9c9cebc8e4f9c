"""Replicas share a PostgreSQL store: a client waiting on one replica must see a change made
through another (a cancel, a stream chunk) within a sweep, not when its wait runs out; and one
sweep over every waited job must not wake waiters whose job did not change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runq.core.config import ServerConfig
from runq.core.job import JobRequest, JobStatus
from runq.fleet import job_watch
from runq.fleet.signals import Signals
from runq.server.services import Services
from runq.store.postgres import PostgresJobStore
from tests.postgres import PostgresServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def replicas(
    postgres_server: PostgresServer,
) -> AsyncIterator[tuple[PostgresJobStore, PostgresJobStore]]:
    """Two stores on one database: this replica's, and another replica's."""
    dsn = postgres_server.new_database()
    mine, other = PostgresJobStore(dsn), PostgresJobStore(dsn)
    await mine.open()
    await other.open()
    yield mine, other
    await other.close()
    await mine.close()


async def test_a_sweep_wakes_only_the_waiters_whose_job_changed(
    replicas: tuple[PostgresJobStore, PostgresJobStore],
) -> None:
    mine, other = replicas
    signals = Signals()
    quiet, cancelled = [await mine.enqueue(JobRequest(endpoint="echo", input=i)) for i in (1, 2)]
    gates = {job.id: signals.job_gate(job.id) for job in (quiet, cancelled)}
    seen: dict[str, job_watch.Mark] = {}

    await job_watch.sweep(mine, signals, seen)  # first sight: both wake once
    assert all(gate.event.is_set() for gate in gates.values())

    gates = {job.id: signals.job_gate(job.id) for job in (quiet, cancelled)}
    await job_watch.sweep(mine, signals, seen)  # nothing changed
    assert not any(gate.event.is_set() for gate in gates.values())

    await other.cancel(cancelled.id)
    await job_watch.sweep(mine, signals, seen)
    assert (gates[quiet.id].event.is_set(), gates[cancelled.id].event.is_set()) == (False, True)


async def test_a_stream_chunk_written_through_another_replica_wakes_its_reader(
    replicas: tuple[PostgresJobStore, PostgresJobStore],
) -> None:
    mine, other = replicas
    signals = Signals()
    job = await mine.enqueue(JobRequest(endpoint="echo", input=1))
    assert [j.id for j in await other.take("echo", "w1", 1)] == [job.id]
    gate = signals.job_gate(job.id)
    seen: dict[str, job_watch.Mark] = {}
    await job_watch.sweep(mine, signals, seen)
    gate = signals.job_gate(job.id)

    assert await other.append_stream(job.id, "w1", {"token": "a"})
    await job_watch.sweep(mine, signals, seen)

    assert gate.event.is_set()


async def test_a_client_waiting_on_one_replica_sees_a_cancel_through_another_at_once(
    replicas: tuple[PostgresJobStore, PostgresJobStore], tmp_path: Path
) -> None:
    mine, other = replicas
    plane = Services(ServerConfig(data_dir=tmp_path), mine, "secret")
    watch = asyncio.create_task(job_watch.watch(mine, plane.signals, 0.2))
    try:
        job = await plane.jobs.submit(JobRequest(endpoint="echo", input=1, sync=True))
        waiting = asyncio.create_task(plane.jobs.wait_for(job.id, 60))
        stream = asyncio.create_task(plane.jobs.read_stream(job.id, 60))
        deadline = asyncio.get_running_loop().time() + 5
        while job.id not in plane.signals.waited_jobs():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        for _ in range(2):  # two store round trips: the waits have read the queued job
            await mine.get(job.id)

        await other.cancel(job.id)

        # Within a few sweeps (0.2 s each), far from the waits' own 30 s re-read.
        ended = await asyncio.wait_for(waiting, 5)
        assert ended is not None and ended.status is JobStatus.CANCELLED
        read = await asyncio.wait_for(stream, 5)
        assert read is not None and read.job.status is JobStatus.CANCELLED
    finally:
        plane.signals.close()
        await watch
