"""The worker state machine: every move is checked against core.worker.MOVES and recorded."""

from __future__ import annotations

import logging

from runq.core.worker import MOVES, Transition, Worker, WorkerState
from runq.errors import IllegalTransition

log = logging.getLogger("runq.fleet")


def begin(worker: Worker, state: WorkerState, now: float, reason: str) -> None:
    """The first state of a new worker (INITIALIZING, or THROTTLED when no GPU is free)."""
    worker.state = state
    worker.started_at = now
    worker.transitions = [Transition(now, state, reason)]


def move(worker: Worker, state: WorkerState, now: float, reason: str) -> bool:
    """Moves `worker` to `state`; False when it is already there (nothing recorded).

    Raises:
        IllegalTransition: the state machine does not allow the move (e.g. PARKED -> RUNNING:
            a parked worker must be revived first).
    """
    if worker.state == state:
        return False
    if state not in MOVES[worker.state]:
        raise IllegalTransition(
            f"worker {worker.id}: {worker.state.value} -> {state.value} is not allowed ({reason})"
        )
    if worker.state == WorkerState.INITIALIZING and state in (
        WorkerState.IDLE,
        WorkerState.RUNNING,
    ):
        worker.ready_at = now
    worker.state = state
    worker.transitions.append(Transition(now, state, reason))
    if len(worker.transitions) > MAX_TRANSITIONS:
        worker.transitions = compact(worker.transitions, KEEP_RECENT)
    log.debug("worker %s -> %s: %s", worker.id, state.value, reason)
    return True


MAX_TRANSITIONS = 1000  # a busy worker flips idle <-> running twice per job
KEEP_RECENT = 200


def compact(steps: list[Transition], keep_recent: int) -> list[Transition]:
    """Folds the middle of a long timeline into one step per state, keeping the time spent in
    each state, so the cost ledger stays exact while memory stays bounded. The cold start (up
    to the first ready state) and the `keep_recent` latest steps stay as they were.

    Example: idle 0-1, running 1-3, idle 3-4, running 4-5 folds to idle 0-2, running 2-5
    (2 s idle and 3 s running either way).
    """
    ready = next(
        (i for i, t in enumerate(steps) if t.state in (WorkerState.IDLE, WorkerState.RUNNING)),
        len(steps),
    )
    end = len(steps) - keep_recent
    if end - ready < 3:
        return steps
    spent: dict[WorkerState, float] = {}
    for step, following in zip(steps[ready:end], steps[ready + 1 : end + 1], strict=True):
        spent[step.state] = spent.get(step.state, 0.0) + following.at - step.at
    folded, at = [], steps[ready].at
    for state, seconds in spent.items():
        folded.append(Transition(at, state, f"{seconds:.3f}s in all (older moves folded)"))
        at += seconds
    return [*steps[:ready], *folded, *steps[end:]]


def can_move(worker: Worker, state: WorkerState) -> bool:
    return worker.state == state or state in MOVES[worker.state]
