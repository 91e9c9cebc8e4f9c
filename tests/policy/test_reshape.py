"""runq.policy.reshape: what a change of active/max workers and a rolling redeploy do."""

from __future__ import annotations

import doctest

import pytest

from runq.core.worker import WorkerState
from runq.policy import reshape
from runq.policy.reshape import FleetView, ResizePlan, RollPlan, resize, roll

IDLE, RUNNING, INIT, THROTTLED, PARKED = (
    WorkerState.IDLE,
    WorkerState.RUNNING,
    WorkerState.INITIALIZING,
    WorkerState.THROTTLED,
    WorkerState.PARKED,
)


def w(
    worker_id: str,
    state: WorkerState = IDLE,
    since: float = 0.0,
    *,
    active: bool = False,
    old: bool = False,
) -> FleetView:
    return FleetView(worker_id, state, since, active, old)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(reshape).failed == 0


@pytest.mark.parametrize(
    ("workers", "active", "maximum", "in_queue", "expected"),
    [
        pytest.param(
            (w("a", active=True), w("b", active=True)),
            2,
            2,
            0,
            ResizePlan(),
            id="nothing changed: nothing to do",
        ),
        pytest.param(
            (w("a", IDLE, 10, active=True), w("b", IDLE, 30, active=True)),
            0,
            2,
            0,
            ResizePlan(stop=("a", "b"), demote=("a", "b")),
            id="active 2 -> 0 with both idle and nothing queued: both released",
        ),
        pytest.param(
            (w("a", IDLE, 10, active=True), w("b", IDLE, 30, active=True)),
            0,
            2,
            1,
            ResizePlan(stop=("a",), demote=("a", "b")),
            id="active 2 -> 0 with a job queued: one idle worker stays to take it",
        ),
        pytest.param(
            (w("a", RUNNING, 5, active=True), w("b", IDLE, 30, active=True)),
            1,
            2,
            0,
            ResizePlan(stop=("b",), demote=("b",)),
            id="active 2 -> 1: the idle one loses the flag and goes, the busy one stays",
        ),
        pytest.param(
            (w("a", RUNNING, 5, active=True), w("b", RUNNING, 30, active=True)),
            0,
            2,
            0,
            ResizePlan(demote=("a", "b")),
            id="active 2 -> 0 with both busy: flags go, they stay to finish (idle timeout next)",
        ),
        pytest.param(
            (w("r", RUNNING, 1), w("i1", IDLE, 50), w("i2", IDLE, 20), w("t", THROTTLED, 60)),
            0,
            1,
            0,
            ResizePlan(stop=("t", "i2", "i1")),
            id="max 4 -> 1: throttled, then idle longest first; the busy one stays",
        ),
        pytest.param(
            (w("r1", RUNNING, 1), w("r2", RUNNING, 2), w("i", IDLE, 50)),
            0,
            1,
            0,
            ResizePlan(stop=("i",), drain=("r1",)),
            id="max 3 -> 1 with two busy: the idle one stops, a busy one drains",
        ),
        pytest.param(
            (w("a", IDLE, 10), w("b", INIT, 40), w("c", THROTTLED, 45)),
            2,
            3,
            0,
            ResizePlan(promote=("a", "b")),
            id="active 0 -> 2: ready workers get the flag first, then starting ones",
        ),
        pytest.param(
            (w("o1", IDLE, 10, active=True, old=True), w("n1", IDLE, 40), w("n2", INIT, 45)),
            1,
            2,
            0,
            ResizePlan(),
            id="old workers of a roll do not count against max_workers",
        ),
        pytest.param(
            (w("p", PARKED, 10), w("a", IDLE, 20)),
            0,
            1,
            0,
            ResizePlan(),
            id="parked workers are not live: max 1 is met",
        ),
    ],
)
def test_resize(
    workers: tuple[FleetView, ...], active: int, maximum: int, in_queue: int, expected: ResizePlan
) -> None:
    assert resize(workers, active, maximum, in_queue) == expected


@pytest.mark.parametrize(
    ("workers", "active", "replaced", "expected"),
    [
        pytest.param(
            (w("o1", IDLE, 10, old=True), w("o2", RUNNING, 20, old=True)),
            2,
            0,
            RollPlan(start=2),
            id="first step: a new worker per old ready one, none retires yet",
        ),
        pytest.param(
            (w("o1", IDLE, 10, old=True), w("o2", RUNNING, 5, old=True), w("n1"), w("n2", INIT)),
            2,
            0,
            RollPlan(drain=("o1",), replaced=1),
            id="one new ready: 3 ready - 2 active = 1 may go, the idle old one first",
        ),
        pytest.param(
            (w("o2", RUNNING, 5, old=True), w("n1"), w("n2", INIT)),
            2,
            1,
            RollPlan(replaced=1),
            id="the new ready worker replaced one already: the other old one waits",
        ),
        pytest.param(
            (w("o2", RUNNING, 5, old=True), w("n1"), w("n2", RUNNING)),
            2,
            1,
            RollPlan(drain=("o2",), replaced=2, done=True),
            id="second new ready: the last old one drains and the roll is done",
        ),
        pytest.param(
            (w("o1", IDLE, 10, old=True), w("o2", IDLE, 20, old=True), w("n1"), w("n2")),
            2,
            0,
            RollPlan(drain=("o1", "o2"), replaced=2, done=True),
            id="two new ready at once: 4 ready - 2 active = 2 may go",
        ),
        pytest.param(
            (w("o1", IDLE, 10, old=True), w("n1")),
            1,
            0,
            RollPlan(drain=("o1",), replaced=1, done=True),
            id="one for one with active 1: 2 ready - 1 = 1 may go",
        ),
        pytest.param(
            (w("o1", IDLE, 10, old=True), w("n1", THROTTLED)),
            1,
            0,
            RollPlan(),
            id="new waits for the old one's GPU but active 1 must stay ready: it waits",
        ),
        pytest.param(
            (w("o1", IDLE, 10, old=True), w("o2", IDLE, 20, old=True), w("n1", THROTTLED)),
            1,
            0,
            RollPlan(drain=("o1",), replaced=1),
            id="new throttled, one old above active: it gives way for the GPU",
        ),
        pytest.param(
            (w("o1", INIT, 10, old=True), w("o2", PARKED, 20, old=True)),
            0,
            0,
            RollPlan(stop=("o1", "o2"), done=True),
            id="old workers that serve nothing stop at once, no replacement needed",
        ),
        pytest.param(
            (),
            1,
            0,
            RollPlan(done=True),
            id="nothing to roll",
        ),
    ],
)
def test_roll(
    workers: tuple[FleetView, ...], active: int, replaced: int, expected: RollPlan
) -> None:
    assert roll(workers, active, replaced) == expected
