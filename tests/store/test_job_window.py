"""The store's metrics reads: jobs ended in a window with delay and execution percentiles, and
totals of ended jobs that never go down. A fake clock places every job exactly.

They run on every backend, with the contract suite's fixtures.
"""

from __future__ import annotations

import pytest

from runq.core.job import JobStatus
from runq.core.stats import Percentiles
from runq.store.base import JobStore
from runq.store.window import TIMES_KEEP_S
from tests.store import test_contract as contract
from tests.store.test_contract import T0, FakeClock, make_request, result

# The contract suite's fixtures, by name: the store on every backend, its fake clock.
backend, clock, store = contract.backend, contract.clock, contract.store

pytestmark = pytest.mark.timeout(30)


async def run_job(
    store: JobStore, clock: FakeClock, wait_s: float, run_s: float, error: bool = False
) -> None:
    """Submit at now, take `wait_s` later, report `run_s` after that."""
    job = await store.enqueue(make_request())
    clock.advance(wait_s)
    taken = await store.take(job.endpoint, "w1", 1)
    assert [j.id for j in taken] == [job.id]
    clock.advance(run_s)
    body = {"error": "boom"} if error else {"output": "ok"}
    assert (await store.finish(job.id, "w1", result(body))).applied


async def test_a_window_gives_nearest_rank_percentiles_of_delay_and_execution(
    store: JobStore, clock: FakeClock
) -> None:
    # Ten jobs, one after another: job k waits k s and runs 10 * k s (k = 1..10).
    for k in range(1, 11):
        await run_job(store, clock, wait_s=k, run_s=10 * k, error=k == 10)

    window = await store.job_window("echo", T0, clock.now)

    assert (window.completed, window.failed, window.cancelled, window.timed_out) == (9, 1, 0, 0)
    assert window.ended == 10
    # Nearest rank of 10 values: p50 the 5th, p90 the 9th, p95 and p99 the 10th.
    assert window.delay == Percentiles(count=10, p50=5.0, p90=9.0, p95=10.0, p99=10.0)
    assert window.execution == Percentiles(count=10, p50=50.0, p90=90.0, p95=100.0, p99=100.0)


async def test_a_window_holds_only_jobs_that_ended_inside_it(
    store: JobStore, clock: FakeClock
) -> None:
    await run_job(store, clock, wait_s=1, run_s=2)  # ends at T0 + 3
    boundary = clock.now
    await run_job(store, clock, wait_s=4, run_s=5)  # ends at T0 + 12
    await store.enqueue(make_request())  # still queued: not ended, in no window

    before = await store.job_window("echo", T0, boundary)  # (T0, T0 + 3]: the first job
    after = await store.job_window("echo", boundary, clock.now)  # (T0 + 3, T0 + 12]
    elsewhere = await store.job_window("other", T0, clock.now)

    assert (before.completed, before.delay.p50, before.execution.p50) == (1, 1.0, 2.0)
    assert (after.completed, after.delay.p50, after.execution.p50) == (1, 4.0, 5.0)
    assert elsewhere.ended == 0 and elsewhere.delay == Percentiles(0, None, None, None, None)


async def test_jobs_that_never_ran_count_by_status_but_have_no_times(
    store: JobStore, clock: FakeClock
) -> None:
    cancelled = await store.enqueue(make_request())
    clock.advance(1)  # the window (T0, now] leaves out T0 itself
    await store.cancel(cancelled.id)
    await store.enqueue(make_request(ttl_s=10))
    clock.advance(11)
    assert len(await store.expire_queued(clock.now)) == 1  # TIMED_OUT in the queue
    await run_job(store, clock, wait_s=2, run_s=3)

    window = await store.job_window("echo", T0, clock.now)

    assert (window.completed, window.cancelled, window.timed_out) == (1, 1, 1)
    assert window.delay.count == window.execution.count == 1


async def test_ended_totals_count_every_way_a_job_ends_and_survive_retention(
    store: JobStore, clock: FakeClock
) -> None:
    await run_job(store, clock, wait_s=0, run_s=1)  # COMPLETED
    await run_job(store, clock, wait_s=0, run_s=1, error=True)  # FAILED
    running = await store.enqueue(make_request())
    await store.take("echo", "w2", 1)
    await store.fail(running.id, "w2", "execution timeout", JobStatus.TIMED_OUT)  # TIMED_OUT
    for _ in range(3):
        await store.enqueue(make_request())
    assert len(await store.purge_queue("echo")) == 3  # 3 CANCELLED
    again = await store.cancel(running.id)  # already ended: nothing changes, nothing counted
    assert again[0] is not None and again[0].status is JobStatus.TIMED_OUT

    expected = {
        JobStatus.COMPLETED: 1,
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 3,
        JobStatus.TIMED_OUT: 1,
    }
    assert await store.ended_totals("echo") == expected
    assert await store.ended_totals("other") == dict.fromkeys(expected, 0)

    clock.advance(7 * 24 * 3600)  # past every retention window: the jobs are deleted
    assert await store.delete_expired(clock.now) == 6
    assert await store.ended_totals("echo") == expected


async def test_a_window_keeps_jobs_past_their_retention_for_a_day(
    store: JobStore, clock: FakeClock
) -> None:
    job = await store.enqueue(make_request(sync=True))  # a runsync result is kept 60 s
    clock.advance(2)
    await store.take("echo", "w1", 1)
    clock.advance(3)
    await store.finish(job.id, "w1", result({"output": 1}))
    ended_at = clock.now

    clock.advance(3600)
    assert await store.delete_expired(clock.now) == 1
    assert await store.get(job.id) is None
    window = await store.job_window("echo", T0, clock.now)
    assert (window.completed, window.delay.p50, window.execution.p50) == (1, 2.0, 3.0)

    clock.now = ended_at + TIMES_KEEP_S + 1  # a day on, its times go too
    await store.delete_expired(clock.now)
    assert (await store.job_window("echo", T0, clock.now)).ended == 0
