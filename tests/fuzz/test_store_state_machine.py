"""A Hypothesis state machine over SqliteJobStore: random sequences of the calls that clients,
workers and the reaper make, checked against a model of the job lifecycle after every step.

Hypothesis drives stateful tests synchronously, so each machine owns an event loop and runs
every store call to completion on it; two calls gathered on that loop land in one group-commit
batch, which is how racing callers reach the store in production.

Invariants, after every step:
- each job's status, holder and retries are the model's, and so are the counts;
- an IN_PROGRESS job has exactly one holder, and `running()` lists each such job once;
- a final status never changes, except FAILED or TIMED_OUT back to IN_QUEUE by `retry`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from runq.core.job import JobRequest, JobStatus, WorkerResult
from runq.errors import Conflict
from runq.store.sqlite import SqliteJobStore

T = TypeVar("T")
ENDPOINT = "echo"
T0 = 1_000_000.0  # the clock stands still: no TTL runs out, so the model needs no time
workers = st.sampled_from(["w1", "w2"])
# Who makes a worker's call: the job's holder or the other worker. Drawn as a role, not a name,
# so that each call is tried by both, whichever worker holds the job.
callers = st.sampled_from(["holder", "other"])
QUEUED, RUNNING = JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS
REOPENABLE = frozenset({JobStatus.FAILED, JobStatus.TIMED_OUT})


@dataclass
class Expected:
    """What the model says about one job."""

    seq: int  # enqueue order: the queue is FIFO within a priority
    low_priority: bool
    status: JobStatus = QUEUED
    worker: str | None = None
    retries: int = 0


def result(ok: bool) -> WorkerResult:
    if ok:
        return WorkerResult(False, True, {"ok": True}, None, False)
    return WorkerResult(False, False, None, "boom", False)


def has_jobs(machine: StoreMachine) -> bool:
    return bool(machine.model)


def has(*statuses: JobStatus) -> Any:
    def check(machine: StoreMachine) -> bool:
        return any(e.status in statuses for e in machine.model.values())

    return check


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="runq-fuzz-store-"))
        self.store = SqliteJobStore(self.dir / "runq.db", clock=lambda: T0)
        self.model: dict[str, Expected] = {}
        self.retried = 0  # the endpoint's `retried` counter (requeues after lost workers)
        self.seen: dict[str, JobStatus] = {}  # statuses at the end of the previous step
        self.reopened: set[str] = set()  # jobs that `retry` requeued in this step

    def call(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def together(self, *awaitables: Awaitable[Any]) -> list[Any]:
        """Start the calls in the same loop iteration: one batch in the store."""

        async def gather() -> list[Any]:
            return list(await asyncio.gather(*awaitables))

        return self.call(gather())

    def teardown(self) -> None:
        try:
            self.call(self.store.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- the model's view of the queue ------------------------------------------------------

    def pick(self, data: st.DataObject, *statuses: JobStatus) -> str:
        """A known job: mostly one in `statuses` (when there is one), else any, so that the
        calls that matter in a state are tried in it."""
        # In enqueue order, not by id: ids are random, and Hypothesis must replay its draws.
        matching = [i for i, e in self.model.items() if e.status in statuses]
        if matching and data.draw(st.sampled_from([True, True, True, False]), label="prefer"):
            return data.draw(st.sampled_from(matching), label="job")
        return data.draw(st.sampled_from(list(self.model)), label="job")

    def next_queued(self, limit: int) -> list[str]:
        queued = [(e.low_priority, e.seq, i) for i, e in self.model.items() if e.status == QUEUED]
        return [job_id for _, _, job_id in sorted(queued)[: max(0, limit)]]

    def worker(self, job_id: str, caller: str) -> str:
        """The worker in that role for the job (w1 or w2 when nobody holds it)."""
        holder = self.model[job_id].worker
        if holder is None:
            return "w1" if caller == "holder" else "w2"
        other = "w2" if holder == "w1" else "w1"
        return holder if caller == "holder" else other

    def hand_out(self, worker: str, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.model[job_id].status, self.model[job_id].worker = RUNNING, worker

    def end(self, job_id: str, status: JobStatus) -> None:
        self.model[job_id].status, self.model[job_id].worker = status, None

    # --- rules ----------------------------------------------------------------------------

    @initialize()
    def open_store(self) -> None:
        self.call(self.store.open())

    @rule(low_priority=st.booleans())
    def enqueue(self, low_priority: bool) -> None:
        request = JobRequest(
            endpoint=ENDPOINT, input={"n": len(self.model)}, low_priority=low_priority
        )
        job = self.call(self.store.enqueue(request))
        assert job.id not in self.model and job.status == QUEUED
        self.model[job.id] = Expected(seq=len(self.model), low_priority=low_priority)

    @precondition(has_jobs)
    @rule(data=st.data(), worker=workers)
    def calls_that_change_nothing(self, data: st.DataObject, worker: str) -> None:
        """Enqueueing a known id again returns that job unchanged; unknown ids are None."""
        job_id = self.pick(data)
        request = JobRequest(endpoint=ENDPOINT, input={"again": True}, id=job_id)
        job = self.call(self.store.enqueue(request))
        assert job.status == self.model[job_id].status and job.input != {"again": True}
        assert self.call(self.store.get("no-such-job")) is None
        assert self.call(self.store.cancel("no-such-job")) == (None, None)
        assert self.call(self.store.retry("no-such-job")) is None
        assert self.call(self.store.requeue("no-such-job", worker)) is None
        outcome = self.call(self.store.finish("no-such-job", worker, result(True)))
        assert (outcome.job, outcome.applied) == (None, False)

    @rule(
        first=st.integers(min_value=0, max_value=3),
        second=st.integers(min_value=0, max_value=3),
        at_once=st.booleans(),
    )
    def take(self, first: int, second: int, at_once: bool) -> None:
        """w1 takes up to `first` jobs and w2 up to `second`: one after the other (each gets
        exactly the model's next jobs, in order), or at once in one batch (they split the
        model's next jobs between them, none to both)."""
        if not at_once:
            for worker, limit in (("w1", first), ("w2", second)):
                expected = self.next_queued(limit)
                taken = self.call(self.store.take(ENDPOINT, worker, limit))
                assert [job.id for job in taken] == expected
                assert all(job.status == RUNNING and job.worker_id == worker for job in taken)
                self.hand_out(worker, expected)
            return
        expected = self.next_queued(first + second)
        one, two = self.together(
            self.store.take(ENDPOINT, "w1", first), self.store.take(ENDPOINT, "w2", second)
        )
        ids_one, ids_two = [job.id for job in one], [job.id for job in two]
        assert not set(ids_one) & set(ids_two), "a job was handed to both workers"
        assert sorted(ids_one + ids_two) == sorted(expected)
        assert len(ids_one) <= first and len(ids_two) <= second
        self.hand_out("w1", ids_one)
        self.hand_out("w2", ids_two)

    @precondition(has(RUNNING))
    @rule(data=st.data(), caller=callers, ok=st.booleans(), then_take=st.integers(0, 2))
    def finish(self, data: st.DataObject, caller: str, ok: bool, then_take: int) -> None:
        job_id = self.pick(data, RUNNING)
        worker = self.worker(job_id, caller)
        held = self.model[job_id].status == RUNNING and self.model[job_id].worker == worker
        before = self.model[job_id].status
        outcome = self.call(self.store.finish(job_id, worker, result(ok), then_take))
        assert outcome.applied == held, "a finish applied by a worker that does not hold the job"
        assert outcome.job is not None
        if not held:
            assert outcome.job.status == before and outcome.taken == []
            return
        self.end(job_id, JobStatus.COMPLETED if ok else JobStatus.FAILED)
        assert outcome.job.status == self.model[job_id].status
        expected = self.next_queued(then_take)
        assert [job.id for job in outcome.taken] == expected
        self.hand_out(worker, expected)

    @precondition(has_jobs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = self.pick(data)  # any job: preferring live ones would leave few running
        expected = self.model[job_id]
        holder = expected.worker if expected.status == RUNNING else None
        job, stop_on = self.call(self.store.cancel(job_id))
        assert stop_on == holder
        if not expected.status.is_terminal:
            self.end(job_id, JobStatus.CANCELLED)
        assert job is not None and job.status == expected.status

    @precondition(has(RUNNING))
    @rule(data=st.data(), ok=st.booleans())
    def the_holder_finishes_while_a_client_cancels(self, data: st.DataObject, ok: bool) -> None:
        job_id = self.pick(data, RUNNING)
        expected = self.model[job_id]
        if expected.status != RUNNING:
            return
        worker = expected.worker
        assert worker is not None
        outcome, (cancelled, stop_on) = self.together(
            self.store.finish(job_id, worker, result(ok)), self.store.cancel(job_id)
        )
        assert cancelled is not None and outcome.job is not None
        if outcome.applied:  # the finish won: the cancel found a final job
            assert cancelled.status == outcome.job.status and stop_on is None
        else:
            assert cancelled.status == JobStatus.CANCELLED and stop_on == worker
        self.end(job_id, cancelled.status)

    @precondition(has(RUNNING))
    @rule(data=st.data(), caller=callers)
    def requeue(self, data: st.DataObject, caller: str) -> None:
        job_id = self.pick(data, RUNNING)
        worker = self.worker(job_id, caller)
        expected = self.model[job_id]
        held = expected.status == RUNNING and expected.worker == worker
        job = self.call(self.store.requeue(job_id, worker))
        assert (job is not None) == held
        if held:
            self.end(job_id, QUEUED)
            expected.retries += 1
            self.retried += 1

    @precondition(has(RUNNING))
    @rule(
        data=st.data(),
        caller=st.none() | callers,  # the reaper names no worker
        status=st.sampled_from([JobStatus.FAILED, JobStatus.TIMED_OUT]),
    )
    def fail(self, data: st.DataObject, caller: str | None, status: JobStatus) -> None:
        job_id = self.pick(data, RUNNING)
        worker = None if caller is None else self.worker(job_id, caller)
        expected = self.model[job_id]
        applies = expected.status == RUNNING and worker in (None, expected.worker)
        job = self.call(self.store.fail(job_id, worker, "reaped", status))
        assert (job is not None) == applies
        if applies:
            self.end(job_id, status)

    @precondition(has_jobs)
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job_id = self.pick(data, *REOPENABLE)
        expected = self.model[job_id]
        if expected.status in REOPENABLE:
            job = self.call(self.store.retry(job_id))
            assert job is not None and job.status == QUEUED
            self.end(job_id, QUEUED)
            expected.retries = 0
            self.reopened.add(job_id)
        else:
            with pytest.raises(Conflict):
                self.call(self.store.retry(job_id))

    @precondition(has(QUEUED))
    @rule()
    def purge_queue(self) -> None:
        queued = self.next_queued(len(self.model))
        assert len(self.call(self.store.purge_queue(ENDPOINT))) == len(queued)
        for job_id in queued:
            self.end(job_id, JobStatus.CANCELLED)

    @precondition(has(RUNNING))
    @rule(data=st.data(), caller=callers)
    def progress_and_stream(self, data: st.DataObject, caller: str) -> None:
        job_id = self.pick(data, RUNNING)
        worker = self.worker(job_id, caller)
        held = self.model[job_id].status == RUNNING and self.model[job_id].worker == worker
        assert self.call(self.store.progress(job_id, worker, {"p": 1})) == held
        assert self.call(self.store.append_stream(job_id, worker, {"c": 1})) == held

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def every_job_is_as_the_model_says(self) -> None:
        stored = self.together(*(self.store.get(job_id) for job_id in self.model))
        for job_id, job in zip(self.model, stored, strict=True):
            expected = self.model[job_id]
            assert job is not None, f"{job_id} vanished"
            assert (job.status, job.retries) == (expected.status, expected.retries), job_id
            if job.status == RUNNING:
                assert job.worker_id is not None and job.worker_id == expected.worker, job_id

    @invariant()
    def a_final_status_changes_only_by_retry(self) -> None:
        if not self.model:
            return
        stored = self.together(*(self.store.get(job_id) for job_id in self.model))
        now = {job.id: job.status for job in stored if job is not None}
        for job_id, before in self.seen.items():
            after = now.get(job_id)
            if before.is_terminal and after != before:
                assert job_id in self.reopened and before in REOPENABLE and after == QUEUED
        self.seen = now
        self.reopened.clear()

    @invariant()
    def running_jobs_have_one_holder_each(self) -> None:
        running = self.call(self.store.running(ENDPOINT))
        ids = [job.id for job in running]
        assert len(ids) == len(set(ids))
        expected = {i: e.worker for i, e in self.model.items() if e.status == RUNNING}
        assert {job.id: job.worker_id for job in running} == expected

    @invariant()
    def the_counts_match(self) -> None:
        counts = self.call(self.store.counts(ENDPOINT))
        for status in JobStatus:
            assert counts[status] == sum(e.status == status for e in self.model.values()), status
        assert counts["retried"] == self.retried
        stats = self.call(self.store.queue_stats(ENDPOINT))
        assert (stats.in_queue, stats.in_progress) == (counts[QUEUED], counts[RUNNING])
        assert self.call(self.store.queue_depth(ENDPOINT)) == counts[QUEUED]


# Passes in under 10 s. A failure is shrunk for up to 300 s (Hypothesis stops there), then
# reported: the timeout leaves it the time.
@pytest.mark.timeout(420)
def test_the_store_keeps_the_job_lifecycle_under_any_sequence_of_calls() -> None:
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=60,  # with 40 steps each: 2,400 calls; CI time is shared
            stateful_step_count=40,
            deadline=None,
            database=None,  # nothing written into the work tree
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
