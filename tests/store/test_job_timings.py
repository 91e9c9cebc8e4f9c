"""`JobStore.job_timings`: the recent jobs a worker ran to the end, with their times, on every
backend (the contract suite's fixtures: SQLite, and PostgreSQL on a throwaway cluster)."""

from __future__ import annotations

import pytest

from runq.core.job import JobStatus
from runq.store.base import JobStore, JobTiming
from tests.store import test_contract as contract
from tests.store.test_contract import T0, FakeClock, make_request, result

# The contract suite's fixtures, by name: the store on every backend, its fake clock.
backend, clock, store = contract.backend, contract.clock, contract.store

pytestmark = pytest.mark.timeout(30)


async def ran(
    store: JobStore, clock: FakeClock, wait_s: float, run_s: float, body: object, **kw: object
) -> str:
    """Enqueued now, taken `wait_s` later, reported `run_s` after that."""
    job = await store.enqueue(make_request(**kw))
    clock.advance(wait_s)
    [taken] = await store.take(job.endpoint, "w1", 1)
    clock.advance(run_s)
    await store.finish(taken.id, "w1", result(body))
    return job.id


async def test_timings_of_finished_jobs_newest_first(store: JobStore, clock: FakeClock) -> None:
    done = await ran(store, clock, 1.0, 2.0, {"output": "ok"})  # created T0, ends T0 + 3
    failed = await ran(store, clock, 0.5, 1.5, {"error": "boom"})  # created T0 + 3, ends T0 + 5
    await ran(store, clock, 0.0, 1.0, {"output": "ok"}, endpoint="other")
    cancelled = await store.enqueue(make_request())  # never ran: no times
    await store.cancel(cancelled.id)
    running = await store.enqueue(make_request())
    await store.take(running.endpoint, "w2", 1)  # not finished yet

    assert await store.job_timings("echo", 10) == [
        JobTiming(failed, JobStatus.FAILED, T0 + 3, T0 + 3.5, T0 + 5),
        JobTiming(done, JobStatus.COMPLETED, T0, T0 + 1, T0 + 3),
    ]
    assert [t.id for t in await store.job_timings("echo", 1)] == [failed]
    assert await store.job_timings("echo", 0) == []
    assert await store.job_timings("nobody", 10) == []
