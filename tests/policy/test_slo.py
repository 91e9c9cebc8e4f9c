"""runq.policy.slo: the queueing estimate behind the "slo" scaler, arithmetic in the ids."""

from __future__ import annotations

import doctest
import math
from typing import Any

import pytest

from runq.policy import slo


@pytest.mark.parametrize(
    ("workers", "load", "waits"),
    [
        pytest.param(1, 0.5, 0.5, id="one worker at half load: half the arrivals wait"),
        pytest.param(2, 1.0, 1 / 3, id="two workers at load 1: a third wait"),
        pytest.param(3, 3.0, 1.0, id="at capacity every arrival waits"),
        pytest.param(3, 0.0, 0.0, id="no load: nobody waits"),
        pytest.param(0, 0.5, 1.0, id="no worker: every arrival waits"),
    ],
)
def test_erlang_c(workers: int, load: float, waits: float) -> None:
    assert slo.erlang_c(workers, load) == pytest.approx(waits)


@pytest.mark.parametrize(
    ("rate", "execution", "target", "limit", "workers"),
    [
        # Load 4: 5 workers leave 7.5 % over 2 s, 6 leave 0.5 %.
        pytest.param(4.0, 1.0, 2.0, 20, 6, id="4 jobs/s of 1 s under a 2 s target need 6"),
        # A looser target lets the queue absorb more: 5 workers leave 0.554 e^-10 << 5 %.
        pytest.param(4.0, 1.0, 10.0, 20, 5, id="the same load under 10 s needs 5"),
        pytest.param(4.0, 1.0, 2.0, 5, 5, id="never more than the limit"),
        # 1 job every 20 s of 1 s: C(1, 0.05) e^-(0.95 x 2) = 0.05 x 0.15 < 5 %.
        pytest.param(0.05, 1.0, 2.0, 20, 1, id="a trickle needs one worker"),
        pytest.param(0.0, 1.0, 2.0, 20, 0, id="no arrivals need none"),
    ],
)
def test_workers_for_target(
    rate: float, execution: float, target: float, limit: int, workers: int
) -> None:
    assert slo.workers_for_target(rate, execution, target, limit) == workers


def test_the_chosen_count_is_the_fewest_that_meets_the_target() -> None:
    rate, execution, target = 7.0, 0.8, 1.5
    chosen = slo.workers_for_target(rate, execution, target, limit=50)

    assert slo.tail_probability(chosen, rate, execution, target) <= slo.P95_TAIL
    assert slo.tail_probability(chosen - 1, rate, execution, target) > slo.P95_TAIL


@pytest.mark.parametrize(
    ("arrivals", "rate"),
    [
        pytest.param([], 0.0, id="no arrivals"),
        # 30 in the last 60 s, 5 of them in the last 10 s: max(30/60, 5/10) = 0.5.
        pytest.param([41.0 + 2 * n for n in range(30)], 0.5, id="steady: both windows agree"),
        # 20 in the last 5 s: 20/10 = 2/s beats 20/60.
        pytest.param([95.0 + 0.25 * n for n in range(20)], 2.0, id="a burst shows in 10 s"),
        # 30 between 45 and 74 s, none since: 30/60 = 0.5 (the short window is empty).
        pytest.param([45.0 + n for n in range(30)], 0.5, id="a lull keeps the minute's rate"),
        pytest.param([10.0, 20.0], 0.0, id="arrivals older than a minute do not count"),
    ],
)
def test_arrival_rate(arrivals: list[float], rate: float) -> None:
    assert slo.arrival_rate(arrivals, now=100.0) == pytest.approx(rate)


def backlog(**overrides: Any) -> int:
    """The backlog estimate at now = 100 with no recent arrivals, 1 s jobs, 4 s cold start."""
    fields: dict[str, Any] = {
        "now": 100.0,
        "arrivals": (),
        "executions": (1.0,),
        "cold_start_s": 4.0,
        "in_queue": 0,
        "in_progress": 0,
        "oldest_queued_at": None,
        "target_s": 10.0,
        "limit": 50,
    }
    return slo.slo_workers(**{**fields, **overrides})[1]


@pytest.mark.parametrize(
    ("overrides", "workers"),
    [
        pytest.param({}, 0, id="no work: no backlog"),
        pytest.param({"in_progress": 3}, 3, id="running jobs keep their workers"),
        # Budget 10 - 0 - 4 = 6 s: one new worker clears 1 + 6 = 7 jobs; 7 queued -> 1.
        pytest.param(
            {"in_queue": 7, "oldest_queued_at": 100.0}, 1, id="7 queued fit one new worker"
        ),
        # 8 queued: ceil(8 / 7) = 2.
        pytest.param({"in_queue": 8, "oldest_queued_at": 100.0}, 2, id="8 queued need two"),
        # 2 busy clear 2 x 6 = 12 queued jobs in the budget: no new worker.
        pytest.param(
            {"in_queue": 12, "in_progress": 2, "oldest_queued_at": 100.0},
            2,
            id="busy workers absorb what fits in the budget",
        ),
        # Waited 7 s: budget 10 - 7 - 4 < 0 -> 0: one worker per queued job.
        pytest.param(
            {"in_queue": 5, "in_progress": 1, "oldest_queued_at": 93.0},
            6,
            id="past the point a cold start can help: a worker per job",
        ),
        # Longer jobs: 3 s each, budget 6 s: a new worker clears 1 + 2 = 3; 7 queued -> 3.
        pytest.param(
            {"in_queue": 7, "oldest_queued_at": 100.0, "executions": (2.0, 4.0)},
            3,
            id="the mean execution time sets what a worker clears",
        ),
    ],
)
def test_backlog(overrides: dict[str, Any], workers: int) -> None:
    assert backlog(**overrides) == workers


@pytest.mark.parametrize("target", [0.0, -1.0, math.nan, math.inf])
def test_a_target_that_is_not_a_positive_number_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="p95_delay_target_s must be a positive number"):
        backlog(target_s=target)


def test_docstring_examples() -> None:
    assert doctest.testmod(slo).failed == 0
