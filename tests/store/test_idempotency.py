"""The store's idempotent enqueue (`JobStore.enqueue_once`): one key, one job, for 24 h, across
restarts and past the job's own retention. Part of the contract suite: every backend, with its
fixtures and its fake clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runq.core.idempotency import KEEP_S, IdempotencyKey
from runq.core.job import RETENTION_ASYNC_S, JobStatus
from runq.errors import IdempotencyMismatch, QueueFull
from runq.store.base import JobStore
from tests.store import test_contract as contract
from tests.store.test_contract import ENDPOINT, Backend, FakeClock, make_request, result

# The contract suite's fixtures, by name: the store on every backend, its fake clock.
backend, clock, store = contract.backend, contract.clock, contract.store

pytestmark = pytest.mark.timeout(30)


def make_key(**overrides: Any) -> IdempotencyKey:
    fields: dict[str, Any] = {
        "owner": "key-1",
        "endpoint": ENDPOINT,
        "key": "order-42",
        "fingerprint": "f1",
    }
    return IdempotencyKey(**{**fields, **overrides})


async def job_count(store: JobStore, endpoint: str = ENDPOINT) -> int:
    return len(await store.recent_jobs(endpoint, 100))


async def test_the_first_submission_makes_a_job_and_a_retry_gets_that_job(
    store: JobStore, clock: FakeClock
) -> None:
    first = await store.enqueue_once(make_request(), make_key())
    clock.advance(5)
    again = await store.enqueue_once(make_request(), make_key())

    assert not first.replayed and first.job is not None
    assert first.job.status is JobStatus.IN_QUEUE
    assert again.replayed and again.job_id == first.job_id
    assert again.job == first.job
    assert await job_count(store) == 1


async def test_a_retry_sees_the_job_as_it_is_now(store: JobStore) -> None:
    first = await store.enqueue_once(make_request(), make_key())
    await store.take(ENDPOINT, "w1", 1)
    await store.finish(first.job_id, "w1", result({"output": {"done": 1}}))

    again = await store.enqueue_once(make_request(), make_key())

    assert again.job is not None and again.job.status is JobStatus.COMPLETED
    assert again.job.output == {"done": 1}


@pytest.mark.parametrize(
    "other",
    [
        {"key": "order-43"},
        {"owner": "key-2"},
        {"endpoint": "other"},
    ],
    ids=["another-key", "the-same-key-from-another-api-key", "the-same-key-on-another-endpoint"],
)
async def test_a_submission_under_another_name_makes_its_own_job(
    store: JobStore, other: dict[str, str]
) -> None:
    endpoint = other.get("endpoint", ENDPOINT)
    first = await store.enqueue_once(make_request(), make_key())

    second = await store.enqueue_once(make_request(endpoint=endpoint), make_key(**other))

    assert not second.replayed and second.job_id != first.job_id


async def test_a_key_reused_for_another_request_is_refused_and_stores_nothing(
    store: JobStore,
) -> None:
    first = await store.enqueue_once(make_request(), make_key())

    with pytest.raises(IdempotencyMismatch, match="order-42"):
        await store.enqueue_once(make_request(input="other"), make_key(fingerprint="f2"))

    assert await job_count(store) == 1
    assert (await store.enqueue_once(make_request(), make_key())).job_id == first.job_id


async def test_racing_submissions_with_one_key_make_one_job(store: JobStore) -> None:
    submissions = await asyncio.gather(
        *(store.enqueue_once(make_request(), make_key()) for _ in range(10))
    )

    assert len({s.job_id for s in submissions}) == 1
    assert sum(not s.replayed for s in submissions) == 1
    assert await job_count(store) == 1


async def test_the_key_survives_a_restart(backend: Backend) -> None:
    first_store = await backend.open()
    try:
        first = await first_store.enqueue_once(make_request(), make_key())
    finally:
        await first_store.close()

    reopened = await backend.open()
    try:
        again = await reopened.enqueue_once(make_request(), make_key())
        assert again.replayed and again.job_id == first.job_id
        assert await job_count(reopened) == 1
    finally:
        await reopened.close()


async def test_the_key_outlives_the_jobs_retention_and_gives_its_final_status(
    store: JobStore, clock: FakeClock
) -> None:
    first = await store.enqueue_once(make_request(), make_key())
    await store.take(ENDPOINT, "w1", 1)
    clock.advance(10)
    await store.finish(first.job_id, "w1", result({"output": 1}))
    clock.advance(RETENTION_ASYNC_S + 1)
    assert await store.delete_expired(clock.now) == 1

    again = await store.enqueue_once(make_request(), make_key())

    assert await store.get(first.job_id) is None
    assert again.replayed and again.job_id == first.job_id
    assert again.job is None and again.status is JobStatus.COMPLETED
    assert await job_count(store) == 0


@pytest.mark.parametrize(
    ("age_s", "replayed"),
    [(KEEP_S - 1, True), (KEEP_S, False)],
    ids=["a-second-before-24h-it-names-its-job", "after-24h-it-is-free-for-a-new-job"],
)
async def test_a_key_is_kept_24_hours_from_the_first_submission(
    store: JobStore, clock: FakeClock, age_s: float, replayed: bool
) -> None:
    first = await store.enqueue_once(make_request(), make_key())
    clock.advance(age_s)
    await store.delete_expired(clock.now)

    # A different request: refused while the key lives, a new job once it is free.
    if replayed:
        with pytest.raises(IdempotencyMismatch):
            await store.enqueue_once(make_request(), make_key(fingerprint="f2"))
        return
    later = await store.enqueue_once(make_request(), make_key(fingerprint="f2"))
    assert not later.replayed and later.job_id != first.job_id
    assert (await store.enqueue_once(make_request(), make_key(fingerprint="f2"))).replayed


async def test_a_full_queue_refuses_a_new_key_but_never_a_retry(store: JobStore) -> None:
    first = await store.enqueue_once(make_request(), make_key(), max_queue=1)

    again = await store.enqueue_once(make_request(), make_key(), max_queue=1)
    with pytest.raises(QueueFull):
        await store.enqueue_once(make_request(), make_key(key="order-43"), max_queue=1)

    assert again.replayed and again.job_id == first.job_id
    # The refused key was not kept: once there is room, it makes its job.
    await store.take(ENDPOINT, "w1", 1)
    later = await store.enqueue_once(make_request(), make_key(key="order-43"), max_queue=1)
    assert not later.replayed and later.job_id != first.job_id
