"""The JobStore contract (`runq.store.base`), run against every backend.

Each backend is one value of the `backend` fixture: SQLite, and PostgreSQL on a throwaway
cluster started once per session (tests/postgres.py), a fresh database per test. The clock is a fake
that a test moves by hand, so TTL and retention are exact and no test sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runq.core.job import (
    RETENTION_ASYNC_S,
    RETENTION_SYNC_S,
    Job,
    JobRequest,
    JobStatus,
    WorkerResult,
    parse_worker_result,
)
from runq.core.keys import ApiKey
from runq.errors import Conflict, QueueFull
from runq.store.base import JobStore, QueueStats
from runq.store.postgres import PostgresJobStore
from runq.store.sqlite import SqliteJobStore
from tests.postgres import PostgresServer

T0 = 1_000_000.0
ENDPOINT = "echo"


@dataclass
class FakeClock:
    now: float = T0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Backend:
    """Opens stores on one database; a second `open()` models a server restart."""

    kind: str
    tmp_path: Path
    clock: FakeClock
    dsn: str = ""

    def new(self) -> JobStore:
        if self.kind == "sqlite":
            return SqliteJobStore(self.tmp_path / "data" / "runq.db", clock=lambda: self.clock.now)
        if self.kind == "postgres":
            return PostgresJobStore(self.dsn, clock=lambda: self.clock.now)
        raise AssertionError(f"unknown backend {self.kind}")

    async def open(self) -> JobStore:
        store = self.new()
        await store.open()
        return store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Backend:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return Backend("postgres", tmp_path, clock, server.new_database())
    return Backend(request.param, tmp_path, clock)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[JobStore]:
    opened = await backend.open()
    yield opened
    await opened.close()


# --- factories ------------------------------------------------------------------------------


def make_request(**overrides: Any) -> JobRequest:
    fields: dict[str, Any] = {"endpoint": ENDPOINT, "input": {"prompt": "hi"}}
    return JobRequest(**{**fields, **overrides})


def result(body: Any) -> WorkerResult:
    """A job-done body as a worker posts it, parsed the way the control plane parses it."""
    return parse_worker_result(body)


async def running_job(store: JobStore, worker: str = "w1", **overrides: Any) -> Job:
    queued = await store.enqueue(make_request(**overrides))
    taken = await store.take(queued.endpoint, worker, 1)
    assert [job.id for job in taken] == [queued.id], "the queue was not empty"
    return taken[0]


async def job_in(store: JobStore, status: JobStatus, **overrides: Any) -> Job:
    """A job brought to `status` the way the system gets it there."""
    if status is JobStatus.IN_QUEUE:
        return await store.enqueue(make_request(**overrides))
    if status is JobStatus.CANCELLED:
        queued = await store.enqueue(make_request(**overrides))
        cancelled, _ = await store.cancel(queued.id)
        assert cancelled is not None
        return cancelled
    job = await running_job(store, "w1", **overrides)
    ended: Job | None = job
    if status is JobStatus.COMPLETED:
        ended = (await store.finish(job.id, "w1", result({"output": {"ok": True}}))).job
    elif status is JobStatus.FAILED:
        ended = (await store.finish(job.id, "w1", result({"error": "boom"}))).job
    elif status is JobStatus.TIMED_OUT:
        ended = await store.fail(job.id, "w1", "execution timeout", JobStatus.TIMED_OUT)
    assert ended is not None and ended.status is status
    return ended


# --- enqueue and get ------------------------------------------------------------------------


async def test_enqueue_returns_a_queued_job_that_can_be_read_back(
    store: JobStore, clock: FakeClock
) -> None:
    job = await store.enqueue(
        make_request(input={"n": [1, 2]}, webhook="http://hook", low_priority=True, ttl_s=60.0)
    )

    assert job.status is JobStatus.IN_QUEUE
    assert job.id
    assert job.input == {"n": [1, 2]}
    assert job.webhook == "http://hook"
    assert job.low_priority is True
    assert job.ttl_s == 60.0
    assert job.created_at == clock.now
    assert (job.started_at, job.worker_id, job.has_output, job.error) == (None, None, False, None)
    assert await store.get(job.id) == job


async def test_each_enqueue_without_an_id_makes_a_new_job(store: JobStore) -> None:
    first = await store.enqueue(make_request())
    second = await store.enqueue(make_request())

    assert first.id != second.id
    assert await store.queue_depth(ENDPOINT) == 2


async def test_an_unknown_job_reads_as_none(store: JobStore) -> None:
    assert await store.get("no-such-job") is None


async def test_enqueue_with_a_known_id_returns_the_stored_job_unchanged(
    store: JobStore, clock: FakeClock
) -> None:
    first = await store.enqueue(make_request(id="job-1", input={"v": 1}))
    clock.advance(5)
    again = await store.enqueue(make_request(id="job-1", input={"v": 2}, low_priority=True))

    assert again == first
    assert await store.get("job-1") == first
    assert await store.queue_depth(ENDPOINT) == 1


# max_queue: what the endpoint holds before the new enqueue, and whether it is stored.
QUEUE_LIMIT_CASES = [
    pytest.param(0, 5, True, id="max_queue 0 is no limit"),
    pytest.param(3, 2, True, id="two queued under a limit of three: stored"),
    pytest.param(3, 3, False, id="three queued at a limit of three: refused"),
    pytest.param(1, 1, False, id="a limit of one with one queued: refused"),
]


@pytest.mark.parametrize(("max_queue", "queued", "stored"), QUEUE_LIMIT_CASES)
async def test_enqueue_with_max_queue_refuses_a_job_once_that_many_wait(
    store: JobStore, max_queue: int, queued: int, stored: bool
) -> None:
    waiting = [await store.enqueue(make_request()) for _ in range(queued)]

    if stored:
        job = await store.enqueue(make_request(), max_queue)
        assert job.status is JobStatus.IN_QUEUE
    else:
        with pytest.raises(QueueFull, match=f"{max_queue} jobs queued"):
            await store.enqueue(make_request(), max_queue)

    assert await store.queue_depth(ENDPOINT) == queued + int(stored)
    for job in waiting:
        assert await store.get(job.id) == job  # the queue keeps what it held


async def test_max_queue_counts_only_queued_jobs_of_the_endpoint(store: JobStore) -> None:
    await running_job(store)  # running: not waiting
    await job_in(store, JobStatus.COMPLETED)
    await store.enqueue(make_request(endpoint="other"))
    await store.enqueue(make_request())

    job = await store.enqueue(make_request(), max_queue=2)  # 1 queued here: room for one

    assert job.status is JobStatus.IN_QUEUE
    with pytest.raises(QueueFull):
        await store.enqueue(make_request(), max_queue=2)


async def test_a_known_id_is_returned_even_when_the_queue_is_full(store: JobStore) -> None:
    first = await store.enqueue(make_request(id="job-1"))

    again = await store.enqueue(make_request(id="job-1"), max_queue=1)

    assert again == first


async def test_concurrent_enqueues_never_pass_max_queue(store: JobStore) -> None:
    async def submit() -> bool:
        try:
            await store.enqueue(make_request(), max_queue=5)
        except QueueFull:
            return False
        return True

    stored = await asyncio.gather(*(submit() for _ in range(20)))

    assert sum(stored) == 5
    assert await store.queue_depth(ENDPOINT) == 5


async def test_jobs_survive_a_restart_on_the_same_database(backend: Backend) -> None:
    store = await backend.open()
    try:
        before = {
            status: await job_in(store, status, endpoint=f"ep-{status.value.lower()}")
            for status in JobStatus
        }
        await store.save_endpoint("echo", "/srv/echo.toml", 'name = "echo"')
    finally:
        await store.close()

    reopened = await backend.open()
    try:
        for status, job in before.items():
            assert await reopened.get(job.id) == job, status
        taken = await reopened.take("ep-in_queue", "w9", 5)
        assert [job.id for job in taken] == [before[JobStatus.IN_QUEUE].id]
        assert await reopened.endpoints() == [("echo", "/srv/echo.toml", 'name = "echo"')]
    finally:
        await reopened.close()


async def test_queue_stats_count_queued_and_running_and_date_the_oldest(
    store: JobStore, clock: FakeClock
) -> None:
    assert await store.queue_stats(ENDPOINT) == QueueStats(0, 0, None)
    first = await store.enqueue(make_request())
    clock.advance(5)
    await store.enqueue(make_request())
    await store.enqueue(make_request(endpoint="elsewhere"))
    await running_job_of_queue(store)  # takes `first` (FIFO)
    clock.advance(1)
    await store.enqueue(make_request())

    stats = await store.queue_stats(ENDPOINT)

    assert (stats.in_queue, stats.in_progress) == (2, 1)
    assert stats.oldest_queued_at == first.created_at + 5  # the second job is now the oldest


async def running_job_of_queue(store: JobStore) -> None:
    assert len(await store.take(ENDPOINT, "w1", 1)) == 1


# --- take -----------------------------------------------------------------------------------

ORDER_CASES = [
    pytest.param(
        1,
        id="taken one at a time, normal jobs come oldest first and before any low-priority job",
    ),
    pytest.param(
        10,
        id="taken in one batch, the list is normal jobs oldest first, then low-priority ones",
    ),
]


@pytest.mark.parametrize("limit", ORDER_CASES)
async def test_take_hands_out_normal_priority_first_then_oldest_first(
    store: JobStore, clock: FakeClock, limit: int
) -> None:
    submitted = [("low-1", True), ("normal-1", False), ("low-2", True), ("normal-2", False)]
    for job_id, low in submitted:
        await store.enqueue(make_request(id=job_id, low_priority=low))
        clock.advance(1)

    order: list[str] = []
    while batch := await store.take(ENDPOINT, "w1", limit):
        order += [job.id for job in batch]

    assert order == ["normal-1", "normal-2", "low-1", "low-2"]


LIMIT_CASES = [
    pytest.param(5, 2, 2, id="five queued and a limit of two hands out two"),
    pytest.param(2, 10, 2, id="a limit above the queue hands out what there is"),
    pytest.param(3, 0, 0, id="a limit of zero hands out nothing"),
    pytest.param(0, 3, 0, id="an empty queue hands out nothing"),
]


@pytest.mark.parametrize(("queued", "limit", "taken"), LIMIT_CASES)
async def test_take_hands_out_at_most_the_limit(
    store: JobStore, queued: int, limit: int, taken: int
) -> None:
    for _ in range(queued):
        await store.enqueue(make_request())

    jobs = await store.take(ENDPOINT, "w1", limit)

    assert len(jobs) == taken
    assert all(job.status is JobStatus.IN_PROGRESS and job.worker_id == "w1" for job in jobs)
    assert await store.queue_depth(ENDPOINT) == queued - taken


async def test_take_only_hands_out_jobs_of_the_asked_endpoint(store: JobStore) -> None:
    await store.enqueue(make_request(endpoint="other"))

    assert await store.take(ENDPOINT, "w1", 5) == []
    assert await store.queue_depth("other") == 1


async def test_take_records_who_took_the_job_and_when(store: JobStore, clock: FakeClock) -> None:
    queued = await store.enqueue(make_request())
    clock.advance(2.5)

    [job] = await store.take(ENDPOINT, "w1", 1)

    assert job.id == queued.id
    assert (job.status, job.worker_id, job.started_at) == (JobStatus.IN_PROGRESS, "w1", clock.now)
    assert job.delay_ms == 2500
    assert await store.get(job.id) == job


async def test_concurrent_takes_hand_every_job_to_exactly_one_worker(store: JobStore) -> None:
    workers, per_worker = 8, 50
    ids = {
        job.id
        for job in await asyncio.gather(
            *(store.enqueue(make_request(input={"i": i})) for i in range(workers * per_worker))
        )
    }

    async def drain(worker: str) -> list[str]:
        got: list[str] = []
        while batch := await store.take(ENDPOINT, worker, 3):
            got += [job.id for job in batch]
        return got

    names = [f"w{n}" for n in range(workers)]
    handed = dict(zip(names, await asyncio.gather(*map(drain, names)), strict=True))

    every = [job_id for got in handed.values() for job_id in got]
    assert len(every) == len(set(every)), "a job was handed to two workers"
    assert set(every) == ids
    for worker, got in handed.items():
        for job_id in got:
            job = await store.get(job_id)
            assert job is not None and job.worker_id == worker
    assert await store.queue_depth(ENDPOINT) == 0


TTL_CASES = [
    # (seconds since submission, ttl) -> still handed out?
    pytest.param(9.999, 10.0, True, id="a job just inside its ttl is handed out"),
    pytest.param(10.0, 10.0, False, id="a job exactly at its ttl is skipped"),
    pytest.param(3600.0, 10.0, False, id="a job long past its ttl is skipped"),
]


@pytest.mark.parametrize(("age", "ttl", "handed_out"), TTL_CASES)
async def test_take_skips_jobs_past_their_ttl(
    store: JobStore, clock: FakeClock, age: float, ttl: float, handed_out: bool
) -> None:
    job = await store.enqueue(make_request(ttl_s=ttl))
    clock.advance(age)

    taken = await store.take(ENDPOINT, "w1", 5)

    assert [j.id for j in taken] == ([job.id] if handed_out else [])


async def test_expire_queued_times_out_only_queued_jobs_past_their_ttl(
    store: JobStore, clock: FakeClock
) -> None:
    running = await running_job(store, ttl_s=10.0)
    stale = await store.enqueue(make_request(ttl_s=10.0))
    fresh = await store.enqueue(make_request(ttl_s=100.0))
    clock.advance(10)

    expired = await store.expire_queued(clock.now)

    assert [job.id for job in expired] == [stale.id]
    after = await store.get(stale.id)
    assert after is not None
    assert after.status is JobStatus.TIMED_OUT
    assert after.error
    assert after.finished_at == clock.now
    assert (await store.get(fresh.id)) == fresh
    assert (await store.get(running.id)) == running
    assert await store.expire_queued(clock.now) == []


# --- finish, progress and stream ------------------------------------------------------------


async def test_finish_from_the_holding_worker_completes_the_job(
    store: JobStore, clock: FakeClock
) -> None:
    queued = await store.enqueue(make_request())
    clock.advance(2)
    await store.take(ENDPOINT, "w1", 1)
    clock.advance(3.5)

    outcome = await store.finish(queued.id, "w1", result({"output": {"text": "hello"}}))

    assert outcome.applied
    job = outcome.job
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert (job.has_output, job.output, job.error) == (True, {"text": "hello"}, None)
    assert job.finished_at == clock.now
    assert (job.delay_ms, job.execution_ms) == (2000, 3500)
    assert await store.get(queued.id) == job
    wire = job.to_wire()
    assert (wire["delayTime"], wire["executionTime"]) == (2000, 3500)


async def test_an_error_result_fails_the_job_and_keeps_its_output(store: JobStore) -> None:
    job = await running_job(store)

    outcome = await store.finish(job.id, "w1", result({"output": {"partial": 1}, "error": "oom"}))

    assert outcome.applied
    assert outcome.job is not None
    assert outcome.job.status is JobStatus.FAILED
    assert (outcome.job.error, outcome.job.output) == ("oom", {"partial": 1})


async def test_a_result_without_output_completes_with_no_output(store: JobStore) -> None:
    job = await running_job(store)

    outcome = await store.finish(job.id, "w1", result({}))

    assert outcome.job is not None
    assert outcome.job.status is JobStatus.COMPLETED
    assert outcome.job.has_output is False
    assert "output" not in outcome.job.to_wire()


SECOND_REPORTS = [
    pytest.param({"output": {"text": "hello"}}, id="the same result twice changes nothing"),
    pytest.param({"output": {"text": "other"}}, id="a second result with other output is dropped"),
    pytest.param({"error": "late"}, id="a late error after success is dropped"),
]


@pytest.mark.parametrize("second", SECOND_REPORTS)
async def test_a_duplicate_finish_is_not_applied(store: JobStore, second: Any) -> None:
    job = await running_job(store)
    first = await store.finish(job.id, "w1", result({"output": {"text": "hello"}}))

    again = await store.finish(job.id, "w1", result(second))

    assert not again.applied
    assert again.job == first.job
    assert await store.get(job.id) == first.job


async def _nothing(store: JobStore, job: Job) -> None:
    return None


async def _cancel(store: JobStore, job: Job) -> None:
    await store.cancel(job.id)


async def _requeue(store: JobStore, job: Job) -> None:
    await store.requeue(job.id, "w1")


async def _time_out(store: JobStore, job: Job) -> None:
    await store.fail(job.id, "w1", "execution timeout", JobStatus.TIMED_OUT)


Setup = Callable[[JobStore, Job], Awaitable[None]]

STALE_FINISHES = [
    pytest.param(_nothing, "w2", id="a worker that does not hold the job"),
    pytest.param(_cancel, "w1", id="the holder after the job was cancelled"),
    pytest.param(_requeue, "w1", id="the holder after its job was requeued"),
    pytest.param(_time_out, "w1", id="the holder after the reaper timed the job out"),
]


@pytest.mark.parametrize(("before", "reporter"), STALE_FINISHES)
async def test_finish_from_a_stale_reporter_changes_nothing(
    store: JobStore, before: Setup, reporter: str
) -> None:
    job = await running_job(store, "w1")
    await before(store, job)
    snapshot = await store.get(job.id)

    outcome = await store.finish(job.id, reporter, result({"output": "late"}))

    assert not outcome.applied
    assert outcome.job == snapshot
    assert await store.get(job.id) == snapshot


async def test_finish_then_take_hands_the_next_queued_jobs_to_the_same_worker(
    store: JobStore,
) -> None:
    job = await running_job(store, "w1")
    low = await store.enqueue(make_request(low_priority=True))
    high = await store.enqueue(make_request())
    other = await store.enqueue(make_request(endpoint="elsewhere"))

    outcome = await store.finish(job.id, "w1", result({"output": 1}), then_take=5)

    assert outcome.applied
    assert [taken.id for taken in outcome.taken] == [high.id, low.id]
    for taken in outcome.taken:
        assert (taken.status, taken.worker_id) == (JobStatus.IN_PROGRESS, "w1")
    assert (await store.get(other.id)).status is JobStatus.IN_QUEUE  # type: ignore[union-attr]


async def test_a_duplicate_finish_takes_nothing(store: JobStore) -> None:
    job = await running_job(store, "w1")
    await store.finish(job.id, "w1", result({"output": 1}))
    queued = await store.enqueue(make_request())

    again = await store.finish(job.id, "w1", result({"output": 1}), then_take=1)

    assert (again.applied, again.taken) == (False, [])
    assert (await store.get(queued.id)).status is JobStatus.IN_QUEUE  # type: ignore[union-attr]


async def test_finish_of_an_unknown_job_is_not_applied(store: JobStore) -> None:
    outcome = await store.finish("no-such-job", "w1", result({"output": 1}))

    assert (outcome.job, outcome.applied) == (None, False)


async def test_progress_updates_the_output_of_a_running_job(store: JobStore) -> None:
    job = await running_job(store)

    assert await store.progress(job.id, "w1", {"pct": 10})
    assert await store.progress(job.id, "w1", {"pct": 50})

    now = await store.get(job.id)
    assert now is not None
    assert (now.status, now.has_output, now.output) == (JobStatus.IN_PROGRESS, True, {"pct": 50})


IGNORED_PROGRESS = [
    pytest.param(JobStatus.COMPLETED, "w1", id="after the job completed (runpod-python #250)"),
    pytest.param(JobStatus.FAILED, "w1", id="after the job failed"),
    pytest.param(JobStatus.TIMED_OUT, "w1", id="after the job timed out"),
    pytest.param(JobStatus.CANCELLED, "w1", id="after the job was cancelled"),
    pytest.param(JobStatus.IN_QUEUE, "w1", id="before any worker took the job"),
    pytest.param(JobStatus.IN_PROGRESS, "w2", id="from a worker that does not hold the job"),
]


@pytest.mark.parametrize(("status", "worker"), IGNORED_PROGRESS)
async def test_progress_is_ignored_unless_the_job_runs_on_that_worker(
    store: JobStore, status: JobStatus, worker: str
) -> None:
    job = await job_in(store, status)

    assert not await store.progress(job.id, worker, {"pct": 99})
    assert await store.get(job.id) == job


async def test_read_stream_is_a_draining_cursor(store: JobStore) -> None:
    job = await running_job(store)
    for chunk in ["a", {"b": 2}, ["c"]]:
        assert await store.append_stream(job.id, "w1", chunk)

    first = await store.read_stream(job.id)
    empty = await store.read_stream(job.id)
    assert await store.append_stream(job.id, "w1", "d")
    assert await store.append_stream(job.id, "w1", "e")
    second = await store.read_stream(job.id)

    assert first is not None and empty is not None and second is not None
    assert first.chunks == ["a", {"b": 2}, ["c"]]
    assert empty.chunks == []
    assert second.chunks == ["d", "e"]
    assert second.job.id == job.id
    assert second.job.status is JobStatus.IN_PROGRESS


IGNORED_CHUNKS = [
    pytest.param(JobStatus.COMPLETED, "w1", id="after the job completed"),
    pytest.param(JobStatus.IN_QUEUE, "w1", id="before any worker took the job"),
    pytest.param(JobStatus.IN_PROGRESS, "w2", id="from a worker that does not hold the job"),
]


@pytest.mark.parametrize(("status", "worker"), IGNORED_CHUNKS)
async def test_stream_chunks_are_ignored_unless_the_job_runs_on_that_worker(
    store: JobStore, status: JobStatus, worker: str
) -> None:
    job = await job_in(store, status)

    assert not await store.append_stream(job.id, worker, "stray")

    read = await store.read_stream(job.id)
    assert read is not None
    assert read.chunks == []


async def test_reading_the_stream_of_an_unknown_job_gives_none(store: JobStore) -> None:
    assert await store.read_stream("no-such-job") is None


# --- cancel, retry, purge -------------------------------------------------------------------


async def test_cancel_of_a_queued_job_needs_no_worker_told(store: JobStore) -> None:
    queued = await store.enqueue(make_request())

    job, worker = await store.cancel(queued.id)

    assert job is not None
    assert job.status is JobStatus.CANCELLED
    assert worker is None
    assert await store.take(ENDPOINT, "w1", 5) == []


async def test_cancel_of_a_running_job_names_its_worker(store: JobStore) -> None:
    running = await running_job(store, "w7")

    job, worker = await store.cancel(running.id)

    assert job is not None
    assert job.status is JobStatus.CANCELLED
    assert worker == "w7"
    assert not (await store.finish(running.id, "w7", result({"output": 1}))).applied


TERMINAL = [
    pytest.param(JobStatus.COMPLETED, id="completed"),
    pytest.param(JobStatus.FAILED, id="failed"),
    pytest.param(JobStatus.TIMED_OUT, id="timed out"),
    pytest.param(JobStatus.CANCELLED, id="already cancelled"),
]


@pytest.mark.parametrize("status", TERMINAL)
async def test_cancel_of_an_ended_job_leaves_it_unchanged(
    store: JobStore, clock: FakeClock, status: JobStatus
) -> None:
    ended = await job_in(store, status)
    clock.advance(1)

    job, worker = await store.cancel(ended.id)

    assert (job, worker) == (ended, None)
    assert await store.get(ended.id) == ended


async def test_cancel_of_an_unknown_job_returns_nothing(store: JobStore) -> None:
    assert await store.cancel("no-such-job") == (None, None)


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(JobStatus.FAILED, id="a failed job"),
        pytest.param(JobStatus.TIMED_OUT, id="a timed-out job"),
    ],
)
async def test_retry_requeues_a_failed_job_with_a_clean_slate(
    store: JobStore, status: JobStatus
) -> None:
    job = await running_job(store, input={"n": 7})
    await store.progress(job.id, "w1", {"pct": 50})
    await store.append_stream(job.id, "w1", "unread chunk")
    ended = (
        (await store.finish(job.id, "w1", result({"output": {"partial": 1}, "error": "boom"}))).job
        if status is JobStatus.FAILED
        else await store.fail(job.id, "w1", "execution timeout", JobStatus.TIMED_OUT)
    )
    assert ended is not None and ended.status is status

    retried = await store.retry(job.id)

    assert retried is not None
    assert (retried.id, retried.status, retried.input) == (job.id, JobStatus.IN_QUEUE, {"n": 7})
    assert (retried.has_output, retried.output, retried.error) == (False, None, None)
    assert (retried.worker_id, retried.started_at, retried.finished_at) == (None, None, None)
    read = await store.read_stream(job.id)
    assert read is not None and read.chunks == []
    assert [j.id for j in await store.take(ENDPOINT, "w2", 5)] == [job.id]


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(JobStatus.IN_QUEUE, id="a queued job"),
        pytest.param(JobStatus.IN_PROGRESS, id="a running job"),
        pytest.param(JobStatus.COMPLETED, id="a completed job"),
        pytest.param(JobStatus.CANCELLED, id="a cancelled job"),
    ],
)
async def test_retry_refuses_jobs_that_did_not_fail(store: JobStore, status: JobStatus) -> None:
    job = await job_in(store, status)

    with pytest.raises(Conflict, match=status.value):
        await store.retry(job.id)
    assert await store.get(job.id) == job


async def test_retry_of_an_unknown_job_returns_none(store: JobStore) -> None:
    assert await store.retry("no-such-job") is None


async def test_purge_queue_cancels_only_the_queued_jobs_of_the_endpoint(store: JobStore) -> None:
    running = await running_job(store)
    queued = [await store.enqueue(make_request()) for _ in range(3)]
    elsewhere = await store.enqueue(make_request(endpoint="other"))

    purged = await store.purge_queue(ENDPOINT)

    assert sorted(job.id for job in purged) == sorted(job.id for job in queued)
    assert all(job.status is JobStatus.CANCELLED for job in purged)
    for job in queued:
        after = await store.get(job.id)
        assert after is not None and after.status is JobStatus.CANCELLED
    assert await store.get(running.id) == running
    assert await store.get(elsewhere.id) == elsewhere
    assert await store.queue_depth(ENDPOINT) == 0
    assert await store.purge_queue(ENDPOINT) == []


# --- lost workers and the reaper ------------------------------------------------------------


async def test_requeue_puts_a_lost_job_back_and_counts_it(store: JobStore) -> None:
    job = await running_job(store, "w1")
    await store.progress(job.id, "w1", {"pct": 40})
    assert (await store.counts(ENDPOINT))["retried"] == 0

    requeued = await store.requeue(job.id, "w1")

    assert requeued is not None
    assert (requeued.status, requeued.retries, requeued.worker_id, requeued.started_at) == (
        JobStatus.IN_QUEUE,
        1,
        None,
        None,
    )
    assert requeued.has_output is False
    counts = await store.counts(ENDPOINT)
    assert (counts["retried"], counts[JobStatus.IN_QUEUE], counts[JobStatus.IN_PROGRESS]) == (
        1,
        1,
        0,
    )
    [again] = await store.take(ENDPOINT, "w2", 1)
    assert (again.id, again.worker_id, again.retries) == (job.id, "w2", 1)
    assert again.to_wire()["retries"] == 1


@pytest.mark.parametrize(
    ("status", "worker"),
    [
        pytest.param(JobStatus.IN_PROGRESS, "w2", id="named worker does not hold the job"),
        pytest.param(JobStatus.IN_QUEUE, "w1", id="the job is queued"),
        pytest.param(JobStatus.COMPLETED, "w1", id="the job already completed"),
    ],
)
async def test_requeue_does_nothing_when(store: JobStore, status: JobStatus, worker: str) -> None:
    job = await job_in(store, status)

    assert await store.requeue(job.id, worker) is None
    assert await store.get(job.id) == job
    assert (await store.counts(ENDPOINT))["retried"] == 0


FAIL_CASES = [
    pytest.param(JobStatus.FAILED, "w1", id="the holding worker's job fails"),
    pytest.param(JobStatus.TIMED_OUT, "w1", id="the holding worker's job times out"),
    pytest.param(JobStatus.TIMED_OUT, None, id="a job ends whoever holds it when none is named"),
]


@pytest.mark.parametrize(("status", "worker"), FAIL_CASES)
async def test_fail_ends_a_running_job_with_an_error(
    store: JobStore, clock: FakeClock, status: JobStatus, worker: str | None
) -> None:
    job = await running_job(store, "w1")
    clock.advance(7)

    ended = await store.fail(job.id, worker, "execution timeout of 5s exceeded", status)

    assert ended is not None
    assert (ended.status, ended.error) == (status, "execution timeout of 5s exceeded")
    assert ended.finished_at == clock.now
    assert await store.get(job.id) == ended


@pytest.mark.parametrize(
    ("status", "worker"),
    [
        pytest.param(JobStatus.IN_PROGRESS, "w2", id="named worker does not hold the job"),
        pytest.param(JobStatus.IN_QUEUE, None, id="the job is only queued"),
        pytest.param(JobStatus.COMPLETED, "w1", id="the job already completed"),
    ],
)
async def test_fail_does_nothing_when(
    store: JobStore, status: JobStatus, worker: str | None
) -> None:
    job = await job_in(store, status)

    assert await store.fail(job.id, worker, "lost") is None
    assert await store.get(job.id) == job


async def test_running_lists_every_in_progress_job(store: JobStore) -> None:
    mine = await running_job(store, "w1")
    theirs = await running_job(store, "w2", endpoint="other")
    await store.enqueue(make_request())

    assert {job.id for job in await store.running()} == {mine.id, theirs.id}
    assert [job.id for job in await store.running("other")] == [theirs.id]


OVERDUE_CASES = [
    # A job submitted at T0, taken `wait` s later, checked `elapsed` s after it was taken.
    # 0 + 4.999 < 5: still inside the execution timeout.
    pytest.param(5.0, 86400.0, 0.0, 4.999, False, id="a job inside its execution timeout"),
    # 0 + 5 >= 5: the execution timeout is reached.
    pytest.param(5.0, 86400.0, 0.0, 5.0, True, id="a job at its execution timeout"),
    # No execution timeout; 2 + 10000 < 86400: no limit applies.
    pytest.param(None, 86400.0, 2.0, 10_000.0, False, id="a job with no execution timeout"),
    # TTL counts from submission: 15 + 5 = 20 >= ttl 20.
    pytest.param(None, 20.0, 15.0, 5.0, True, id="a running job that reached its ttl"),
    # 15 + 4.9 = 19.9 < ttl 20.
    pytest.param(None, 20.0, 15.0, 4.9, False, id="a running job just inside its ttl"),
]


@pytest.mark.parametrize(("timeout", "ttl", "wait", "elapsed", "overdue"), OVERDUE_CASES)
async def test_overdue_finds_running_jobs_past_their_limits(
    store: JobStore,
    clock: FakeClock,
    timeout: float | None,
    ttl: float,
    wait: float,
    elapsed: float,
    overdue: bool,
) -> None:
    queued = await store.enqueue(make_request(execution_timeout_s=timeout, ttl_s=ttl))
    clock.advance(wait)
    await store.take(ENDPOINT, "w1", 1)
    clock.advance(elapsed)

    found = await store.overdue(clock.now)

    assert [job.id for job in found] == ([queued.id] if overdue else [])


async def test_queued_jobs_are_never_overdue(store: JobStore, clock: FakeClock) -> None:
    await store.enqueue(make_request(execution_timeout_s=1.0, ttl_s=10.0))

    assert await store.overdue(clock.advance(3600)) == []


# --- retention ------------------------------------------------------------------------------


async def _sync(store: JobStore, job: Job) -> None:
    await store.finish(job.id, "w1", result({"output": 1}))


async def _keep_after_finish(store: JobStore, job: Job) -> None:
    await store.finish(job.id, "w1", result({"output": 1}))
    await store.keep_async(job.id)


async def _keep_before_finish(store: JobStore, job: Job) -> None:
    await store.keep_async(job.id)
    await store.finish(job.id, "w1", result({"output": 1}))


async def _cancel_running(store: JobStore, job: Job) -> None:
    await store.cancel(job.id)


async def _fail_running(store: JobStore, job: Job) -> None:
    await store.fail(job.id, "w1", "lost")


RETENTION_CASES = [
    # (sync?, how it ends, seconds after the end, still there?)
    pytest.param(False, _sync, RETENTION_ASYNC_S - 0.001, True, id="async job kept 30 min"),
    pytest.param(False, _sync, RETENTION_ASYNC_S, False, id="async job gone at 30 min"),
    pytest.param(True, _sync, RETENTION_SYNC_S - 0.001, True, id="sync job kept 60 s"),
    pytest.param(True, _sync, RETENTION_SYNC_S, False, id="sync job gone at 60 s"),
    pytest.param(
        True, _keep_after_finish, RETENTION_SYNC_S, True, id="keep_async after the end keeps it"
    ),
    pytest.param(
        True, _keep_after_finish, RETENTION_ASYNC_S, False, id="keep_async ends at 30 min"
    ),
    pytest.param(
        True, _keep_before_finish, RETENTION_SYNC_S, True, id="keep_async while running keeps it"
    ),
    pytest.param(
        False, _cancel_running, RETENTION_ASYNC_S, False, id="a cancelled job goes at 30 min"
    ),
    pytest.param(False, _fail_running, RETENTION_ASYNC_S, False, id="a failed job goes at 30 min"),
]


@pytest.mark.parametrize(("sync", "end", "after", "kept"), RETENTION_CASES)
async def test_delete_expired_removes_jobs_past_their_retention(
    store: JobStore, clock: FakeClock, sync: bool, end: Setup, after: float, kept: bool
) -> None:
    job = await running_job(store, sync=sync)
    await end(store, job)

    deleted = await store.delete_expired(clock.now + after)

    assert deleted == (0 if kept else 1)
    assert (await store.get(job.id) is not None) == kept


async def test_unfinished_jobs_are_never_deleted(store: JobStore, clock: FakeClock) -> None:
    queued = await store.enqueue(make_request(sync=True))
    running = await running_job(store, sync=True, endpoint="other")

    assert await store.delete_expired(clock.now + 10 * RETENTION_ASYNC_S) == 0
    assert await store.get(queued.id) == queued
    assert await store.get(running.id) == running


# --- webhooks -------------------------------------------------------------------------------


async def test_a_finished_job_with_a_webhook_queues_the_full_envelope(
    store: JobStore, clock: FakeClock
) -> None:
    job = await running_job(store, input={"n": 1}, webhook="http://hooks.test/done")
    clock.advance(2)
    done = (await store.finish(job.id, "w1", result({"output": {"sum": 3}}))).job
    assert done is not None

    [hook] = await store.due_webhooks(clock.now, 10)

    assert (hook.job_id, hook.url, hook.attempts) == (job.id, "http://hooks.test/done", 0)
    body = json.loads(hook.body)
    assert body == done.to_webhook()
    assert {
        key: body[key] for key in ("id", "status", "output", "input", "webhook", "executionTime")
    } == {
        "id": job.id,
        "status": "COMPLETED",
        "output": {"sum": 3},
        "input": {"n": 1},
        "webhook": "http://hooks.test/done",
        "executionTime": 2000,
    }


async def _finish_with_error(store: JobStore, job: Job) -> None:
    await store.finish(job.id, "w1", result({"error": "boom"}))


async def _fail_timed_out(store: JobStore, job: Job) -> None:
    await store.fail(job.id, "w1", "too slow", JobStatus.TIMED_OUT)


WEBHOOK_ENDINGS = [
    pytest.param(_sync, "COMPLETED", id="a completed job is delivered"),
    pytest.param(_finish_with_error, "FAILED", id="a job failed by its worker is delivered"),
    pytest.param(_fail_running, "FAILED", id="a job failed by runq is delivered"),
    pytest.param(_fail_timed_out, None, id="a timed-out job is not delivered"),
    pytest.param(_cancel_running, None, id="a cancelled job is not delivered"),
]


@pytest.mark.parametrize(("end", "delivered_status"), WEBHOOK_ENDINGS)
async def test_which_endings_queue_a_webhook(
    store: JobStore, clock: FakeClock, end: Setup, delivered_status: str | None
) -> None:
    job = await running_job(store, webhook="http://hooks.test/done")
    await end(store, job)

    hooks = await store.due_webhooks(clock.now, 10)

    assert [json.loads(h.body)["status"] for h in hooks] == (
        [delivered_status] if delivered_status else []
    )


async def test_a_job_without_a_webhook_queues_no_delivery(
    store: JobStore, clock: FakeClock
) -> None:
    job = await running_job(store)
    await store.finish(job.id, "w1", result({"output": 1}))

    assert await store.due_webhooks(clock.now, 10) == []


@pytest.mark.parametrize(
    "delivered",
    [
        pytest.param(True, id="a delivered webhook leaves the outbox"),
        pytest.param(False, id="a webhook given up leaves the outbox"),
    ],
)
async def test_a_settled_webhook_leaves_the_outbox(
    store: JobStore, clock: FakeClock, delivered: bool
) -> None:
    job = await running_job(store, webhook="http://hooks.test/done")
    await store.finish(job.id, "w1", result({"output": 1}))
    [hook] = await store.due_webhooks(clock.now, 10)

    await store.webhook_result(hook.id, delivered, None)

    assert await store.due_webhooks(clock.now + 3600, 10) == []


async def test_a_webhook_to_retry_later_waits_until_its_time(
    store: JobStore, clock: FakeClock
) -> None:
    job = await running_job(store, webhook="http://hooks.test/done")
    await store.finish(job.id, "w1", result({"output": 1}))
    [hook] = await store.due_webhooks(clock.now, 10)

    await store.webhook_result(hook.id, False, clock.now + 10)

    assert await store.due_webhooks(clock.now + 9.999, 10) == []
    [again] = await store.due_webhooks(clock.now + 10, 10)
    assert (again.id, again.attempts, again.body) == (hook.id, 1, hook.body)


async def test_due_webhooks_respects_the_limit(store: JobStore, clock: FakeClock) -> None:
    for n in range(3):
        job = await running_job(store, webhook=f"http://hooks.test/{n}")
        await store.finish(job.id, "w1", result({"output": n}))

    assert len(await store.due_webhooks(clock.now, 2)) == 2


# --- endpoints ------------------------------------------------------------------------------


async def test_saved_endpoints_are_listed_by_name_and_a_redeploy_replaces_them(
    store: JobStore,
) -> None:
    assert await store.endpoints() == []
    await store.save_endpoint("zeta", "/srv/zeta.toml", 'name = "zeta"')
    await store.save_endpoint("alpha", "/srv/alpha.toml", 'name = "alpha"')
    await store.save_endpoint("zeta", "/srv/new/zeta.toml", 'name = "zeta"\n# v2')

    assert await store.endpoints() == [
        ("alpha", "/srv/alpha.toml", 'name = "alpha"'),
        ("zeta", "/srv/new/zeta.toml", 'name = "zeta"\n# v2'),
    ]


async def test_a_deleted_endpoint_is_no_longer_listed_and_its_jobs_stay(
    store: JobStore,
) -> None:
    await store.save_endpoint("gone", "/srv/gone.toml", 'name = "gone"')
    await store.save_endpoint("kept", "/srv/kept.toml", 'name = "kept"')
    job = await store.enqueue(make_request(endpoint="gone"))

    assert await store.delete_endpoint("gone") is True
    assert await store.delete_endpoint("gone") is False  # deleting twice: nothing left
    assert await store.endpoints() == [("kept", "/srv/kept.toml", 'name = "kept"')]
    assert (await store.get(job.id)) is not None  # history stays for its retention


async def test_counts_report_every_status_of_the_endpoint(store: JobStore) -> None:
    for status in JobStatus:
        await job_in(store, status, endpoint=f"ep-{status.value.lower()}")
        await job_in(store, status, endpoint=f"ep-{status.value.lower()}")
    await job_in(store, JobStatus.COMPLETED)

    counts = await store.counts(ENDPOINT)

    assert counts == {**{status.value: 0 for status in JobStatus}, "COMPLETED": 1, "retried": 0}
    assert (await store.counts("ep-failed"))[JobStatus.FAILED] == 2


# --- API keys -------------------------------------------------------------------------------


async def test_a_created_key_is_stored_by_hash_with_an_id_and_a_date(
    store: JobStore, clock: FakeClock
) -> None:
    key = await store.create_key("ci", "a" * 64, ("invoke:echo", "invoke:other"))

    assert key.id and (key.name, key.hash) == ("ci", "a" * 64)
    assert key.scopes == ("invoke:echo", "invoke:other")
    assert (key.created_at, key.revoked_at) == (clock.now, None)
    assert await store.api_keys() == [key]


async def test_keys_are_listed_oldest_first_with_distinct_ids(
    store: JobStore, clock: FakeClock
) -> None:
    first = await store.create_key("one", "1" * 64, ("admin",))
    clock.advance(1)
    second = await store.create_key("", "2" * 64, ("invoke:echo",))

    assert await store.api_keys() == [first, second]
    assert first.id != second.id


async def test_a_hash_stored_already_is_a_conflict(store: JobStore) -> None:
    first = await store.create_key("one", "1" * 64, ("admin",))

    with pytest.raises(Conflict):
        await store.create_key("two", "1" * 64, ("invoke:echo",))

    assert await store.api_keys() == [first]


async def test_revoke_dates_the_key_once_and_keeps_it_listed(
    store: JobStore, clock: FakeClock
) -> None:
    key = await store.create_key("ci", "a" * 64, ("invoke:echo",))
    clock.advance(10)

    revoked = await store.revoke_key(key.id)
    clock.advance(10)
    again = await store.revoke_key(key.id)

    expected = ApiKey(key.id, "ci", "a" * 64, ("invoke:echo",), key.created_at, clock.now - 10)
    assert revoked == again == expected
    assert await store.api_keys() == [expected]


async def test_revoking_an_unknown_key_returns_none(store: JobStore) -> None:
    assert await store.revoke_key("no-such-key") is None


async def test_keys_survive_a_restart(backend: Backend) -> None:
    store = await backend.open()
    try:
        kept = await store.create_key("kept", "1" * 64, ("admin",))
        created = await store.create_key("gone", "2" * 64, ("invoke:echo",))
        gone = await store.revoke_key(created.id)
    finally:
        await store.close()

    reopened = await backend.open()
    try:
        assert await reopened.api_keys() == [kept, gone]
    finally:
        await reopened.close()
