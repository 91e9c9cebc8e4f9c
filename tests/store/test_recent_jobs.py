"""`JobStore.recent_jobs`: an endpoint's newest jobs in every status (the dashboard's jobs
table), on every backend (the contract suite's fixtures: SQLite, and PostgreSQL)."""

from __future__ import annotations

import pytest

from runq.core.job import JobStatus
from runq.store.base import JobStore
from tests.store import test_contract as contract
from tests.store.test_contract import FakeClock, make_request, result

backend, clock, store = contract.backend, contract.clock, contract.store

pytestmark = pytest.mark.timeout(30)


async def test_recent_jobs_in_every_status_newest_first(store: JobStore, clock: FakeClock) -> None:
    done = await store.enqueue(make_request())
    [taken] = await store.take("echo", "w1", 1)
    await store.finish(taken.id, "w1", result({"output": "ok"}))
    clock.advance(1)
    cancelled = await store.enqueue(make_request())
    await store.cancel(cancelled.id)
    clock.advance(1)
    running = await store.enqueue(make_request())
    await store.take("echo", "w2", 1)
    # Two jobs in the same clock tick: the later one is listed first.
    clock.advance(1)
    first = await store.enqueue(make_request())
    second = await store.enqueue(make_request(input={"prompt": "<b>x</b>"}))
    await store.enqueue(make_request(endpoint="other"))

    jobs = await store.recent_jobs("echo", 10)

    assert [(j.id, j.status) for j in jobs] == [
        (second.id, JobStatus.IN_QUEUE),
        (first.id, JobStatus.IN_QUEUE),
        (running.id, JobStatus.IN_PROGRESS),
        (cancelled.id, JobStatus.CANCELLED),
        (done.id, JobStatus.COMPLETED),
    ]
    assert jobs[0].input == {"prompt": "<b>x</b>"}
    assert jobs[2].worker_id == "w2"
    assert [j.id for j in await store.recent_jobs("echo", 2)] == [second.id, first.id]
    assert await store.recent_jobs("echo", 0) == []
    assert await store.recent_jobs("nobody", 10) == []
