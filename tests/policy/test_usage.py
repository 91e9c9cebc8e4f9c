"""Workers' usage over a window: cold starts, revivals, billed seconds by phase and cost.

Every case is one worker timeline at $0.01/s flex, $0.005/s active, one GPU, and a window;
the arithmetic is in the comment.
"""

from __future__ import annotations

import doctest
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

import runq.policy.usage
from runq.core.worker import Transition, WorkerState
from runq.policy.cost import Rate, worker_cost
from runq.policy.usage import Usage, endpoint_usage, total, worker_usage

INIT, IDLE, RUN = WorkerState.INITIALIZING, WorkerState.IDLE, WorkerState.RUNNING
PARKED, THROTTLED, UNHEALTHY = WorkerState.PARKED, WorkerState.THROTTLED, WorkerState.UNHEALTHY
GONE = WorkerState.TERMINATED
RATE = Rate(flex_per_s=0.01, active_per_s=0.005, gpus=1)


def timeline(*steps: tuple[float, WorkerState]) -> list[Transition]:
    return [Transition(at, state) for at, state in steps]


# Cold start 0-10, idle 10-20, running 20-50, idle 50-60, parked 60-100, revived (idle)
# 100-110, running 110-120, terminated at 120.
LIFE = timeline(
    (0, INIT), (10, IDLE), (20, RUN), (50, IDLE), (60, PARKED), (100, IDLE), (110, RUN), (120, GONE)
)


@dataclass(frozen=True)
class Case:
    steps: Sequence[Transition]
    since: float
    until: float
    expected: Usage
    active: bool = False


def usage(
    cold_starts: int = 0,
    revivals: int = 0,
    billed_s: float = 0.0,
    cold_start_s: float = 0.0,
    idle_s: float = 0.0,
    running_s: float = 0.0,
) -> Usage:
    """A flex worker's Usage: its cost is `billed_s` at the flex rate."""
    return Usage(cold_starts, revivals, billed_s, cold_start_s, idle_s, running_s, billed_s * 0.01)


CASES = {
    "the-whole-life-counts-one-cold-start-and-one-revival": Case(
        # billed 0-60 and 100-120 = 80 s; cold 10, idle 10+10+10 = 30, running 30+10 = 40
        LIFE,
        since=-math.inf,
        until=1000,
        expected=usage(
            cold_starts=1, revivals=1, billed_s=80, cold_start_s=10, idle_s=30, running_s=40
        ),
    ),
    "a-window-inside-the-cold-start-bills-only-its-part": Case(
        # (2, 7]: 5 s of cold start; the cold start began at 0, before the window
        LIFE,
        since=2,
        until=7,
        expected=usage(billed_s=5, cold_start_s=5),
    ),
    "a-window-around-the-start-counts-the-cold-start": Case(
        # (-5, 15]: cold 0-10, idle 10-15
        LIFE,
        since=-5,
        until=15,
        expected=usage(cold_starts=1, billed_s=15, cold_start_s=10, idle_s=5),
    ),
    "parked-time-is-not-billed-to-a-flex-worker": Case(
        # (55, 105]: idle 55-60, parked 60-100 (free), idle 100-105; revived at 100
        LIFE,
        since=55,
        until=105,
        expected=usage(revivals=1, billed_s=10, idle_s=10),
    ),
    "an-always-on-worker-pays-for-parked-time-too": Case(
        # (55, 105] active: all 50 s billed at $0.005; parked 40 s is neither idle nor running
        LIFE,
        since=55,
        until=105,
        expected=Usage(revivals=1, billed_s=50, idle_s=10, cost=50 * 0.005),
        active=True,
    ),
    "a-revival-exactly-at-the-window-start-is-outside-it": Case(
        # (100, 110]: the window is open at its start; idle 100-110
        LIFE,
        since=100,
        until=110,
        expected=usage(billed_s=10, idle_s=10),
    ),
    "a-revival-exactly-at-the-window-end-is-inside-it": Case(
        # (90, 100]: parked the whole time, revived at 100
        LIFE,
        since=90,
        until=100,
        expected=usage(revivals=1),
    ),
    "nothing-is-billed-after-termination": Case(
        LIFE,
        since=120,
        until=500,
        expected=usage(),
    ),
    "a-window-before-the-worker-existed-is-empty": Case(
        LIFE,
        since=-100,
        until=-1,
        expected=usage(),
    ),
    "an-empty-or-reversed-window-is-empty": Case(
        LIFE,
        since=50,
        until=50,
        expected=usage(),
    ),
    "a-live-worker-is-billed-up-to-the-window-end": Case(
        # running since 20, not terminated: (30, 45] is 15 s running
        timeline((0, INIT), (10, IDLE), (20, RUN)),
        since=30,
        until=45,
        expected=usage(billed_s=15, running_s=15),
    ),
    "waiting-for-a-gpu-is-not-the-cold-start": Case(
        # throttled 0-30 (not billed), cold start 30-40, idle 40-50: one cold start, at 30
        timeline((0, THROTTLED), (30, INIT), (40, IDLE)),
        since=-1,
        until=50,
        expected=usage(cold_starts=1, billed_s=20, cold_start_s=10, idle_s=10),
    ),
    "unhealthy-time-is-billed-but-in-no-phase": Case(
        # cold 0-10, idle 10-20, unhealthy 20-35, terminated: 35 s billed, 15 s other
        timeline((0, INIT), (10, IDLE), (20, UNHEALTHY), (35, GONE)),
        since=-1,
        until=100,
        expected=usage(cold_starts=1, billed_s=35, cold_start_s=10, idle_s=10),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_worker_usage(case: Case) -> None:
    got = worker_usage(case.steps, RATE, case.active, case.since, case.until)
    assert (got.cold_starts, got.revivals) == (case.expected.cold_starts, case.expected.revivals)
    for name in ("billed_s", "cold_start_s", "idle_s", "running_s", "cost"):
        assert getattr(got, name) == pytest.approx(getattr(case.expected, name)), name


def test_unhealthy_seconds_show_as_other() -> None:
    steps = CASES["unhealthy-time-is-billed-but-in-no-phase"].steps
    assert worker_usage(steps, RATE, False, -1, 100).other_s == pytest.approx(15)


@pytest.mark.parametrize("cut", [5, 20, 55, 80, 100, 115])
def test_windows_side_by_side_add_up_to_the_ledger(cut: float) -> None:
    # (-1, cut] + (cut, 130] is the whole life, which is what the cost ledger bills.
    parts = [worker_usage(LIFE, RATE, False, -1, cut), worker_usage(LIFE, RATE, False, cut, 130)]
    whole = total(parts)
    bill = worker_cost(LIFE, RATE, False, 130)
    assert (whole.cold_starts, whole.revivals) == (1, 1)
    assert whole.billed_s == pytest.approx(bill.billed_s)
    assert whole.cost == pytest.approx(bill.cost)


def test_an_endpoint_sums_its_workers() -> None:
    other = timeline((30, INIT), (40, IDLE))  # a second worker, still idle
    both = endpoint_usage([(LIFE, RATE, False), (other, RATE, False)], since=0, until=50)
    # LIFE in (0, 50]: cold 10 + idle 10 + running 30 = 50 s; cold start at 0 is outside.
    # other: cold 30-40, idle 40-50 = 20 s, its cold start at 30 is inside.
    assert (both.cold_starts, both.billed_s, both.cold_start_s) == (1, 70, 20)
    assert both.cost == pytest.approx(0.7)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(runq.policy.usage).failed == 0
