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
    log.debug("worker %s -> %s: %s", worker.id, state.value, reason)
    return True


def can_move(worker: Worker, state: WorkerState) -> bool:
    return worker.state == state or state in MOVES[worker.state]
