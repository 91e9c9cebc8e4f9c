"""A worker's pings that claim jobs runq never handed it are noted in its timeline."""

from __future__ import annotations

import pytest

from runq.core.worker import WorkerState
from runq.fleet.registry import HANDED_KEPT, WorkerRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("handed", "pinged", "phantom"),
    [
        pytest.param([], [], [], id="an idle worker that claims nothing is fine"),
        pytest.param(["a"], ["a"], [], id="a job it was handed is a real claim"),
        pytest.param(["a"], [], [], id="a finished job no longer pinged is fine"),
        pytest.param([], ["ghost"], ["ghost"], id="a job never handed is a phantom"),
        pytest.param(["a"], ["a", "x", "b"], ["b", "x"], id="phantoms beside a real job"),
    ],
)
def test_claims(handed: list[str], pinged: list[str], phantom: list[str]) -> None:
    clock = Clock()
    registry = WorkerRegistry(clock)
    worker = registry.register("e")
    registry.took(worker, handed)
    clock.now += 1
    assert registry.claimed(worker, pinged) == phantom
    notes = [t.reason for t in worker.transitions if "never handed" in t.reason]
    assert len(notes) == (1 if phantom else 0)
    if phantom:
        assert all(job in notes[0] for job in phantom)
        assert worker.transitions[-1].state == worker.state  # a note, not a move


def test_a_phantom_is_noted_once_and_an_adopted_worker_never() -> None:
    registry = WorkerRegistry(Clock())
    worker = registry.register("e")
    assert registry.claimed(worker, ["ghost"]) == ["ghost"]
    assert registry.claimed(worker, ["ghost"]) == []  # every ping repeats it: noted once
    adopted = registry.register("e", managed=False, state=WorkerState.IDLE)
    assert registry.claimed(adopted, ["earlier"]) == []  # its jobs predate this control plane


def test_the_handed_jobs_kept_are_capped() -> None:
    registry = WorkerRegistry(Clock())
    worker = registry.register("e")
    registry.took(worker, [f"j{i}" for i in range(HANDED_KEPT + 10)])
    assert len(worker.handed) == HANDED_KEPT
    assert "j0" not in worker.handed and f"j{HANDED_KEPT + 9}" in worker.handed
