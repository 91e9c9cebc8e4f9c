"""Counts of jobs by status (what /health, /metrics and the scheduler read) stay exact through
every way a job changes status, on every backend, without counting the jobs table: they are
kept in the transaction of each change (the stores' job_counts triggers)."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from pathlib import Path

import psycopg

from runq.core.job import RETENTION_ASYNC_S, Job, JobStatus
from runq.store.base import JobStore, QueueStats
from runq.store.postgres import PostgresJobStore
from runq.store.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from runq.store.sqlite import SqliteJobStore
from runq.store.sqlite_schema import MIGRATIONS
from tests.postgres import PostgresServer
from tests.store import test_contract
from tests.store.test_contract import ENDPOINT, FakeClock, make_request, result

# The contract's fixtures: every backend, a fake clock.
backend = test_contract.backend
clock = test_contract.clock
store = test_contract.store

OTHER = "other"


class Tracked:
    """The status of each job as the store's own answers gave it: the expected counts."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    def saw(self, *jobs: Job | None) -> None:
        for job in jobs:
            if job is not None:
                self.jobs[job.id] = job

    def forget_deleted(self, still_there: set[str]) -> None:
        self.jobs = {k: v for k, v in self.jobs.items() if k in still_there}

    def counts(self, endpoint: str) -> dict[str, int]:
        tally = collections.Counter(
            j.status.value for j in self.jobs.values() if j.endpoint == endpoint
        )
        return {status.value: tally.get(status.value, 0) for status in JobStatus}


async def check(store: JobStore, tracked: Tracked, retried: dict[str, int]) -> None:
    for endpoint in (ENDPOINT, OTHER):
        expected = tracked.counts(endpoint)
        assert await store.counts(endpoint) == {**expected, "retried": retried.get(endpoint, 0)}
        stats = await store.queue_stats(endpoint)
        queued = [
            j
            for j in tracked.jobs.values()
            if j.endpoint == endpoint and j.status is JobStatus.IN_QUEUE
        ]
        assert (stats.in_queue, stats.in_progress) == (
            expected["IN_QUEUE"],
            expected["IN_PROGRESS"],
        )
        assert stats.oldest_queued_at == (min(j.created_at for j in queued) if queued else None)
        assert await store.queue_depth(endpoint) == expected["IN_QUEUE"]
    many = await store.queue_stats_many([ENDPOINT, OTHER, "never-used"])
    assert many == {
        ENDPOINT: await store.queue_stats(ENDPOINT),
        OTHER: await store.queue_stats(OTHER),
        "never-used": QueueStats(0, 0, None),
    }
    totals = await store.ended_totals_many([ENDPOINT, OTHER, "never-used"])
    assert totals == {
        ENDPOINT: await store.ended_totals(ENDPOINT),
        OTHER: await store.ended_totals(OTHER),
        "never-used": await store.ended_totals("never-used"),
    }


async def test_counts_follow_every_change_of_status(store: JobStore, clock: FakeClock) -> None:
    tracked = Tracked()
    retried: dict[str, int] = {}
    for i in range(6):
        tracked.saw(await store.enqueue(make_request(low_priority=i == 0)))
        clock.advance(1)
    for _ in range(3):
        tracked.saw(await store.enqueue(make_request(endpoint=OTHER)))
    await check(store, tracked, retried)

    first, second = await store.take(ENDPOINT, "w1", 2)
    tracked.saw(first, second)
    await check(store, tracked, retried)

    outcome = await store.finish(first.id, "w1", result({"output": 1}), then_take=1)
    tracked.saw(outcome.job, *outcome.taken)
    failed = await store.finish(second.id, "w1", result({"error": "boom"}))
    tracked.saw(failed.job)
    await check(store, tracked, retried)

    tracked.saw(await store.requeue(outcome.taken[0].id, "w1"))
    retried[ENDPOINT] = 1
    await check(store, tracked, retried)

    tracked.saw(await store.retry(second.id))
    running = (await store.take(ENDPOINT, "w2", 1))[0]
    tracked.saw(running, await store.fail(running.id, "w2", "too slow", JobStatus.TIMED_OUT))
    await check(store, tracked, retried)

    queued = next(j for j in tracked.jobs.values() if j.status is JobStatus.IN_QUEUE)
    tracked.saw((await store.cancel(queued.id))[0])
    running = (await store.take(ENDPOINT, "w3", 1))[0]
    tracked.saw(running, (await store.cancel(running.id))[0])
    await check(store, tracked, retried)

    assert len(await store.purge_queue(OTHER)) == 3
    for job in list(tracked.jobs.values()):
        if job.endpoint == OTHER:
            tracked.saw(await store.get(job.id))
    await check(store, tracked, retried)

    tracked.saw(await store.enqueue(make_request(ttl_s=5.0)))
    clock.advance(10)
    tracked.saw(*await store.expire_queued(clock.now))
    await check(store, tracked, retried)

    clock.advance(RETENTION_ASYNC_S + 1)
    assert await store.delete_expired(clock.now) > 0
    tracked.forget_deleted({j.id for j in tracked.jobs.values() if await store.get(j.id)})
    await check(store, tracked, retried)
    assert (await store.counts(ENDPOINT))["COMPLETED"] == 0


async def test_counts_stay_exact_under_concurrent_takes_and_finishes(store: JobStore) -> None:
    """Takes and finishes that take the next job race on the same counts: none may deadlock,
    and the counts still add up."""
    for _ in range(40):
        await store.enqueue(make_request())

    async def work(worker: str) -> int:
        done = 0
        jobs = await store.take(ENDPOINT, worker, 1)
        while jobs:
            outcome = await store.finish(jobs[0].id, worker, result({"output": 1}), then_take=1)
            done += 1
            jobs = outcome.taken or await store.take(ENDPOINT, worker, 1)
        return done

    done = await asyncio.wait_for(asyncio.gather(*(work(f"w{i}") for i in range(8))), 60)

    assert sum(done) == 40
    counts = await store.counts(ENDPOINT)
    assert (counts["COMPLETED"], counts["IN_QUEUE"], counts["IN_PROGRESS"]) == (40, 0, 0)


async def test_a_version_5_sqlite_database_counts_the_jobs_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "runq.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:5]:  # before the job counts (migration 6)
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 5")
    for i, status in enumerate(["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "COMPLETED"]):
        conn.execute(
            "INSERT INTO jobs (id, endpoint, status, input, ttl_s, created_at) "
            "VALUES (?, 'echo', ?, '{}', 86400, ?)",
            (f"old-{i}", status, 1000 + i),
        )
    conn.commit()
    conn.close()

    opened = SqliteJobStore(path, clock=lambda: 2000.0)
    await opened.open()
    try:
        counts = await opened.counts("echo")
        assert (counts["IN_QUEUE"], counts["IN_PROGRESS"], counts["COMPLETED"]) == (2, 1, 1)
        stats = await opened.queue_stats("echo")
        assert (stats.in_queue, stats.oldest_queued_at) == (2, 1000)
        await opened.enqueue(make_request())
        assert (await opened.counts("echo"))["IN_QUEUE"] == 3
    finally:
        await opened.close()


async def test_a_version_4_postgres_database_keeps_its_counts_and_totals(
    postgres_server: PostgresServer,
) -> None:
    dsn = postgres_server.new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE runq_schema (version INTEGER NOT NULL)")
        for number, script in enumerate(PG_MIGRATIONS[:4], start=1):  # before the slots (5)
            conn.execute(script.encode())
            conn.execute("INSERT INTO runq_schema (version) VALUES (%s)", (number,))
        for i, status in enumerate(["IN_QUEUE", "IN_QUEUE", "IN_PROGRESS", "COMPLETED"]):
            conn.execute(
                "INSERT INTO jobs (id, endpoint, status, input, ttl_s, created_at, worker_id) "
                "VALUES (%s, 'echo', %s, '{}', 86400, %s, 'w1')",
                (f"old-{i}", status, 1000 + i),
            )
        conn.execute(
            "INSERT INTO counters (endpoint, name, value) "
            "VALUES ('echo', 'ended:COMPLETED', 7), ('echo', 'retried', 2)"
        )

    opened = PostgresJobStore(dsn, clock=lambda: 2000.0)
    await opened.open()
    try:
        counts = await opened.counts("echo")
        assert (counts["IN_QUEUE"], counts["IN_PROGRESS"], counts["COMPLETED"]) == (2, 1, 1)
        assert counts["retried"] == 2
        assert (await opened.ended_totals("echo"))[JobStatus.COMPLETED] == 7
        await opened.finish("old-2", "w1", result({"output": 1}))
        counts = await opened.counts("echo")
        assert (counts["IN_PROGRESS"], counts["COMPLETED"]) == (0, 2)
        assert (await opened.ended_totals("echo"))[JobStatus.COMPLETED] == 8
        window = await opened.job_window("echo", 1999.0, 2000.0)
        assert window.completed == 1
    finally:
        await opened.close()
