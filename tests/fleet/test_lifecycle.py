"""The worker state machine: allowed moves are recorded, others refused, long timelines folded
without changing what they cost."""

from __future__ import annotations

import pytest

from runq.core.worker import Transition, Worker, WorkerState
from runq.errors import IllegalTransition
from runq.fleet import lifecycle
from runq.policy.cost import Rate, worker_cost

S = WorkerState


def make_worker() -> Worker:
    worker = Worker(id="w1", endpoint="ep", token="t")
    lifecycle.begin(worker, S.INITIALIZING, 0.0, "started")
    return worker


def test_moves_are_recorded_with_time_and_reason_and_mark_the_end_of_the_cold_start() -> None:
    worker = make_worker()
    assert lifecycle.move(worker, S.IDLE, 4.0, "ready")
    assert not lifecycle.move(worker, S.IDLE, 5.0, "again")  # already there: nothing recorded
    assert worker.transitions == [
        Transition(0.0, S.INITIALIZING, "started"),
        Transition(4.0, S.IDLE, "ready"),
    ]
    assert worker.cold_start_s == 4.0


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        pytest.param([S.IDLE, S.PARKED], S.RUNNING, id="a parked worker must be revived first"),
        pytest.param([S.UNHEALTHY], S.IDLE, id="an unhealthy worker only terminates"),
        pytest.param([S.TERMINATED], S.IDLE, id="nothing follows terminated"),
    ],
)
def test_illegal_moves_are_refused(path: list[WorkerState], refused: WorkerState) -> None:
    worker = make_worker()
    for at, state in enumerate(path, start=1):
        lifecycle.move(worker, state, float(at), "step")
    with pytest.raises(IllegalTransition, match=refused.value):
        lifecycle.move(worker, refused, 99.0, "bad")


def test_a_long_busy_timeline_is_folded_and_costs_the_same() -> None:
    worker = make_worker()
    lifecycle.move(worker, S.IDLE, 2.0, "ready")
    at = 2.0
    for _ in range(lifecycle.MAX_TRANSITIONS):  # 2,000 moves: idle 1 s, running 0.5 s each
        at += 1.0
        lifecycle.move(worker, S.RUNNING, at, "took a job")
        at += 0.5
        lifecycle.move(worker, S.IDLE, at, "no job left")
    rate = Rate(flex_per_s=0.001, active_per_s=0.0, gpus=1)
    assert len(worker.transitions) <= lifecycle.MAX_TRANSITIONS
    cost = worker_cost(worker.transitions, rate, active=False, until=at)
    assert cost.cold_start_s == pytest.approx(2.0)
    assert cost.running_s == pytest.approx(0.5 * lifecycle.MAX_TRANSITIONS)
    assert cost.idle_s == pytest.approx(1.0 * lifecycle.MAX_TRANSITIONS)
    assert cost.cost == pytest.approx(at * 0.001)
