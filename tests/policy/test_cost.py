"""runq.policy.cost: what workers, jobs and endpoints cost, second by second."""

from __future__ import annotations

import doctest
from collections.abc import Sequence
from dataclasses import asdict

import pytest

import runq.policy.cost
from runq.core.worker import WorkerState as S
from runq.policy.cost import (
    EndpointCost,
    JobCost,
    JobSpan,
    Rate,
    Transition,
    WorkerCost,
    endpoint_cost,
    job_costs,
    worker_cost,
)

FLEX = 0.002  # USD per second per GPU
ACTIVE = 0.0015
RATE = Rate(flex_per_s=FLEX, active_per_s=ACTIVE)


def timeline(*steps: tuple[float, S]) -> tuple[Transition, ...]:
    """A worker's history from `(at, state)` pairs."""
    return tuple(Transition(at, state) for at, state in steps)


def ledger(
    price: float, billed: float, cold: float = 0, idle: float = 0, running: float = 0
) -> WorkerCost:
    """The bill expected for these seconds at `price` USD per second (the whole worker)."""
    return WorkerCost(
        billed_s=billed,
        cost=billed * price,
        cold_start_s=cold,
        cold_start_cost=cold * price,
        idle_s=idle,
        idle_cost=idle * price,
        running_s=running,
        running_cost=running * price,
    )


# init 0-30, idle 30-40, running 40-90, idle 90-100, terminated at 100.
SERVED = timeline(
    (0, S.INITIALIZING), (30, S.IDLE), (40, S.RUNNING), (90, S.IDLE), (100, S.TERMINATED)
)
# init 0-10, idle 10-20, parked 20-100, revived: idle 100-105, running 105-115, terminated.
REVIVED = timeline(
    (0, S.INITIALIZING),
    (10, S.IDLE),
    (20, S.PARKED),
    (100, S.IDLE),
    (105, S.RUNNING),
    (115, S.TERMINATED),
)

WORKERS = [
    # (transitions, rate, active, until, expected)
    # Billed 30 + 10 + 50 + 10 = 100 s; cold 30, idle 10 + 10 = 20, running 50; 100 * 0.002.
    pytest.param(
        SERVED,
        RATE,
        False,
        500,
        ledger(FLEX, billed=100, cold=30, idle=20, running=50),
        id="a flex worker is billed from init through idle and running until terminated",
    ),
    # Throttled 0-50 not billed; init 50-60 + idle 60-80 = 30 s.
    pytest.param(
        timeline((0, S.THROTTLED), (50, S.INITIALIZING), (60, S.IDLE), (80, S.TERMINATED)),
        RATE,
        False,
        500,
        ledger(FLEX, billed=30, cold=10, idle=20),
        id="a throttled flex worker is not billed while it waits for a gpu",
    ),
    # Parked 20-100 not billed: 10 + 10 + 5 + 10 = 35 s; the revival at 100 is idle, not cold.
    pytest.param(
        REVIVED,
        RATE,
        False,
        500,
        ledger(FLEX, billed=35, cold=10, idle=15, running=10),
        id="a parked flex worker is not billed and its revival is no cold start",
    ),
    # Active: all 115 s billed at 0.0015, the 80 s parked in no part (10 + 15 + 10 = 35).
    pytest.param(
        REVIVED,
        RATE,
        True,
        500,
        ledger(ACTIVE, billed=115, cold=10, idle=15, running=10),
        id="an active worker is billed at the active price even while parked",
    ),
    # Active: throttled 0-50 billed too, init 50-60, idle 60-100 up to `until`: 100 s.
    pytest.param(
        timeline((0, S.THROTTLED), (50, S.INITIALIZING), (60, S.IDLE)),
        RATE,
        True,
        100,
        ledger(ACTIVE, billed=100, cold=10, idle=40),
        id="an active worker is billed while throttled",
    ),
    # Never ready: init 0-120 is all cold start; unhealthy 120-125 billed in no part.
    pytest.param(
        timeline((0, S.INITIALIZING), (120, S.UNHEALTHY), (125, S.TERMINATED)),
        RATE,
        False,
        500,
        ledger(FLEX, billed=125, cold=120),
        id="a worker that never got ready has all its init time as cold start",
    ),
    # Still initializing at until=45: 45 s, all cold start.
    pytest.param(
        timeline((0, S.INITIALIZING)),
        RATE,
        False,
        45,
        ledger(FLEX, billed=45, cold=45),
        id="a worker still initializing is billed its cold start so far",
    ),
    # Unhealthy 20-50 billed until terminated: 10 + 10 + 30 = 50 s.
    pytest.param(
        timeline((0, S.INITIALIZING), (10, S.IDLE), (20, S.UNHEALTHY), (50, S.TERMINATED)),
        RATE,
        False,
        500,
        ledger(FLEX, billed=50, cold=10, idle=10),
        id="an unhealthy worker is billed until it is terminated",
    ),
    # 4 GPUs: 100 s * 0.002 * 4 = $0.80.
    pytest.param(
        SERVED,
        Rate(FLEX, ACTIVE, gpus=4),
        False,
        500,
        ledger(FLEX * 4, billed=100, cold=30, idle=20, running=50),
        id="a worker on four gpus costs four times as much",
    ),
    # CPU worker priced 0: the seconds count, the dollars are 0.
    pytest.param(
        SERVED,
        Rate(0, 0),
        False,
        500,
        ledger(0, billed=100, cold=30, idle=20, running=50),
        id="a cpu worker priced at zero costs nothing",
    ),
    # CPU worker on no GPU: 100 s * 0.002 * 0 = 0.
    pytest.param(
        SERVED,
        Rate(FLEX, ACTIVE, gpus=0),
        False,
        500,
        ledger(0, billed=100, cold=30, idle=20, running=50),
        id="a cpu worker holding no gpu costs nothing",
    ),
    # Running from 20, until=80: init 20 + running 60 = 80 s.
    pytest.param(
        timeline((0, S.INITIALIZING), (20, S.RUNNING)),
        RATE,
        False,
        80,
        ledger(FLEX, billed=80, cold=20, running=60),
        id="a worker still running is billed until now",
    ),
    # until=35 falls in the first idle: init 30 + idle 5 = 35 s; later transitions ignored.
    pytest.param(
        SERVED,
        RATE,
        False,
        35,
        ledger(FLEX, billed=35, cold=30, idle=5),
        id="a ledger read as of a past moment bills nothing after it",
    ),
    # Adopted after a restart, first seen idle at 10: idle 10-40, no cold start known.
    pytest.param(
        timeline((10, S.IDLE), (40, S.TERMINATED)),
        RATE,
        False,
        500,
        ledger(FLEX, billed=30, idle=30),
        id="a worker first seen ready has no cold start",
    ),
    pytest.param((), RATE, True, 500, ledger(FLEX, billed=0), id="a worker with no history"),
]


@pytest.mark.parametrize(("transitions", "rate", "active", "until", "expected"), WORKERS)
def test_worker_cost(
    transitions: Sequence[Transition], rate: Rate, active: bool, until: float, expected: WorkerCost
) -> None:
    assert asdict(worker_cost(transitions, rate, active, until)) == pytest.approx(asdict(expected))


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Rate(FLEX, ACTIVE, gpus=-1)


# w1, flex: init 0-30, idle 30-40, j1 40-60, idle 60-70, j2 70-90, idle 90-100, terminated.
# Cold 30 * 0.002 = 0.06, idle 30 * 0.002 = 0.06: each job takes 0.03 + 0.03.
TWO_JOBS = timeline(
    (0, S.INITIALIZING),
    (30, S.IDLE),
    (40, S.RUNNING),
    (60, S.IDLE),
    (70, S.RUNNING),
    (90, S.IDLE),
    (100, S.TERMINATED),
)
# w2, active: init 0-10, idle 10-20, j3 20-50 still running at until=80 (idle 0 since).
STILL_RUNNING = timeline((0, S.INITIALIZING), (10, S.IDLE), (20, S.RUNNING))
# w3, flex: cold 20, idle 20-60, never ran a job.
UNUSED = timeline((0, S.INITIALIZING), (20, S.IDLE), (60, S.TERMINATED))

FLEET: dict[str, tuple[Sequence[Transition], Rate, bool]] = {
    "w1": (TWO_JOBS, RATE, False),
    "w2": (STILL_RUNNING, RATE, True),
    "w3": (UNUSED, RATE, False),
}

JOBS = [
    # (spans, until, expected)
    # j1: 20 s * 0.002 = 0.04 execution, half of 0.06 cold, half of 0.06 idle.
    pytest.param(
        [JobSpan("j1", "w1", 40, 60), JobSpan("j2", "w1", 70, 90)],
        500,
        [JobCost("j1", 0.04, 0.03, 0.03), JobCost("j2", 0.04, 0.03, 0.03)],
        id="two jobs split their worker's cold start and idle equally",
    ),
    # j3 not finished: 20-80 = 60 s * 0.0015 (active) = 0.09; cold 10 * 0.0015, idle 10 * 0.0015.
    pytest.param(
        [JobSpan("j3", "w2", 20, None)],
        80,
        [JobCost("j3", 0.09, 0.015, 0.015)],
        id="a job still running is clipped to now at its worker's active price",
    ),
    # finished_at 120 is after until=80: clipped the same way, 60 s.
    pytest.param(
        [JobSpan("j3", "w2", 20, 120)],
        80,
        [JobCost("j3", 0.09, 0.015, 0.015)],
        id="a job read as of a moment before it finished is clipped to that moment",
    ),
    # j1 lost on w2 after 10 s (10 * 0.0015 = 0.015), retried on w1 for 20 s (0.04).
    # w2 at until=500: idle 10-20, running 20-500; its 0.015 cold + 0.015 idle go to j1 alone.
    # w1's 0.06 + 0.06 split with j2: 0.03 + 0.03 to j1.
    pytest.param(
        [JobSpan("j1", "w2", 20, 30), JobSpan("j1", "w1", 40, 60), JobSpan("j2", "w1", 70, 90)],
        500,
        [JobCost("j1", 0.055, 0.045, 0.045), JobCost("j2", 0.04, 0.03, 0.03)],
        id="a retried job sums its spans and takes a share from each worker",
    ),
    # The same job named twice on one worker takes one share, not two: j1 gets half.
    pytest.param(
        [JobSpan("j1", "w1", 40, 50), JobSpan("j1", "w1", 50, 60), JobSpan("j2", "w1", 70, 90)],
        500,
        [JobCost("j1", 0.04, 0.03, 0.03), JobCost("j2", 0.04, 0.03, 0.03)],
        id="a job run twice on one worker takes one share of it",
    ),
    pytest.param([], 500, [], id="no jobs cost nothing"),
]


@pytest.mark.parametrize(("spans", "until", "expected"), JOBS)
def test_job_costs(spans: list[JobSpan], until: float, expected: list[JobCost]) -> None:
    got = job_costs(spans, FLEET, until)

    assert [job.job_id for job in got] == [job.job_id for job in expected]
    for job, want in zip(got, expected, strict=True):
        assert asdict(job) == pytest.approx(asdict(want))


def test_jobs_on_a_worker_with_one_job_at_a_time_add_up_to_its_whole_cost() -> None:
    # w1's spans are its RUNNING time, so the jobs' totals are its bill: 100 s * 0.002 = 0.20.
    jobs = job_costs([JobSpan("j1", "w1", 40, 60), JobSpan("j2", "w1", 70, 90)], FLEET, 500)

    assert sum(job.total for job in jobs) == pytest.approx(
        worker_cost(TWO_JOBS, RATE, False, 500).cost
    )
    assert sum(job.total for job in jobs) == pytest.approx(0.2)


SHARES = [
    pytest.param(
        [JobSpan("j1", "w1", 40, 60)], 500, id="one job takes all of its worker's overhead"
    ),
    pytest.param(
        [JobSpan(f"j{i}", "w1", 40 + i, 41 + i) for i in range(3)],
        500,
        id="three jobs share an overhead that does not divide evenly",
    ),
    pytest.param(
        [JobSpan("j1", "w1", 40, 60), JobSpan("j2", "w2", 20, None), JobSpan("j3", "w2", 20, 30)],
        77.7,
        id="jobs on two workers, one still running",
    ),
    pytest.param(
        [JobSpan("j1", "w2", 20, 30), JobSpan("j1", "w1", 40, 60), JobSpan("j2", "w1", 70, 90)],
        500,
        id="a retried job across two workers",
    ),
]


@pytest.mark.parametrize(("spans", "until"), SHARES)
def test_job_shares_add_up_to_each_workers_overhead(spans: list[JobSpan], until: float) -> None:
    jobs = job_costs(spans, FLEET, until)
    used = {span.worker_id for span in spans}
    overhead = [worker_cost(*FLEET[worker], until) for worker in used]

    assert sum(job.cold_start + job.idle for job in jobs) == pytest.approx(
        sum(bill.cold_start_cost + bill.idle_cost for bill in overhead)
    )


def test_a_worker_that_ran_no_job_keeps_its_overhead() -> None:
    (job,) = job_costs([JobSpan("j1", "w1", 40, 60)], FLEET, 500)

    # j1 takes all of w1's 0.06 + 0.06 and none of w3's (cold 20 * 0.002 + idle 40 * 0.002).
    assert asdict(job) == pytest.approx(asdict(JobCost("j1", 0.04, 0.06, 0.06)))


def test_a_job_on_an_unknown_worker_is_an_error() -> None:
    with pytest.raises(ValueError, match="j9 ran on unknown worker w9"):
        job_costs([JobSpan("j9", "w9", 0, 1)], FLEET, 500)


def test_job_total_is_its_three_parts() -> None:
    assert JobCost("j1", 0.04, 0.03, 0.03).total == pytest.approx(0.1)


ENDPOINTS = [
    # SERVED: 100 s, 0.20 (cold 0.06, idle 0.04, running 0.10).
    # REVIVED: 35 s, 0.07 (cold 0.02, idle 0.03, running 0.02).
    # UNUSED: 60 s, 0.12 (cold 0.04, idle 0.08).
    pytest.param(
        [SERVED, REVIVED, UNUSED],
        EndpointCost(
            cost=0.39,
            billed_s=195,
            cold_start_cost=0.12,
            idle_cost=0.15,
            running_cost=0.12,
            workers=3,
        ),
        id="an endpoint's bill is the sum of its workers'",
    ),
    pytest.param(
        [], EndpointCost(0, 0, 0, 0, 0, 0), id="an endpoint with no workers costs nothing"
    ),
]


@pytest.mark.parametrize(("timelines", "expected"), ENDPOINTS)
def test_endpoint_cost(timelines: list[Sequence[Transition]], expected: EndpointCost) -> None:
    bills = [worker_cost(history, RATE, False, 500) for history in timelines]

    assert asdict(endpoint_cost(bills)) == pytest.approx(asdict(expected))


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(runq.policy.cost)

    assert result.attempted > 0
    assert result.failed == 0
