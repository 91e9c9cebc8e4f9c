"""Reshaping an endpoint's fleet at once: a change of active/max workers, and a rolling redeploy.

Pure: the caller passes the endpoint's workers that are not already leaving (draining ones are
left out) and carries out the plan. Two decisions:

- `resize`: a lowered `max_workers` releases the extra workers now, idle ones first; a lowered
  `active_workers` takes the always-on flag off the extra active workers, idle ones first, and
  releases those that sit idle with no queued job for them; a raised `active_workers` gives the
  flag to workers already there before new ones start.
- `roll`: a redeploy that changes what workers run starts new workers, and retires an old one
  (it finishes its jobs, then stops) only for a new one that is ready, and only while the ready
  workers left stay at least `active_workers`. The endpoint never has fewer ready workers than
  `active_workers` during the roll, and no job is cut short.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runq.core.worker import WorkerState

READY = frozenset({WorkerState.IDLE, WorkerState.RUNNING})
STARTING = frozenset({WorkerState.INITIALIZING, WorkerState.THROTTLED})
LIVE = READY | STARTING
# Released first when there are too many: no process yet, then idle, then cold-starting, then
# busy (a busy worker finishes its jobs before it stops).
_RELEASE_ORDER = {
    WorkerState.THROTTLED: 0,
    WorkerState.IDLE: 1,
    WorkerState.INITIALIZING: 2,
    WorkerState.RUNNING: 3,
}


@dataclass(frozen=True)
class FleetView:
    """One worker as these decisions see it."""

    id: str
    state: WorkerState
    since: float  # when it entered `state` (an idle one: idle since)
    active: bool = False  # holds one of the endpoint's always-on places
    old: bool = False  # runs the endpoint's previous worker definition (a roll replaces it)


@dataclass(frozen=True)
class ResizePlan:
    stop: tuple[str, ...] = ()  # release now: hold no job (throttled, idle, initializing)
    drain: tuple[str, ...] = ()  # release after their jobs: take no new job, then stop
    demote: tuple[str, ...] = ()  # no longer always-on
    promote: tuple[str, ...] = ()  # always-on from now

    @property
    def empty(self) -> bool:
        return not (self.stop or self.drain or self.demote or self.promote)


@dataclass(frozen=True)
class RollPlan:
    start: int = 0  # new workers to start
    drain: tuple[str, ...] = ()  # ready old workers to retire: finish their jobs, then stop
    stop: tuple[str, ...] = ()  # old workers that serve nothing yet (or parked): stop now
    replaced: int = 0  # old ready workers retired so far, this step's included
    done: bool = False  # no old worker is left


def _release_key(worker: FleetView) -> tuple[int, bool, float, str]:
    """Throttled, idle, initializing, running; not active before active; then the longest in
    that state first (the longest idle is released first)."""
    return (_RELEASE_ORDER.get(worker.state, 4), worker.active, worker.since, worker.id)


def resize(
    workers: Iterable[FleetView], active_workers: int, max_workers: int, in_queue: int
) -> ResizePlan:
    """What a change of active/max workers does at once.

    `max_workers` lowered from 3 to 1 with w1 running, w2 idle since 50 and w3 idle since 80:
    two must go, idle first, the longest idle first -> stop w2 and w3.

    >>> fleet = (FleetView("w1", WorkerState.RUNNING, 10), FleetView("w2", WorkerState.IDLE, 50),
    ...          FleetView("w3", WorkerState.IDLE, 80))
    >>> resize(fleet, active_workers=0, max_workers=1, in_queue=0).stop
    ('w2', 'w3')

    `active_workers` lowered from 2 to 1, both active workers idle, nothing queued: one loses
    the flag and, idle with no job waiting, is released.

    >>> both = (FleetView("a", WorkerState.IDLE, 20, active=True),
    ...         FleetView("b", WorkerState.IDLE, 30, active=True))
    >>> plan = resize(both, active_workers=1, max_workers=3, in_queue=0)
    >>> plan.demote, plan.stop
    (('a',), ('a',))
    """
    every = [w for w in workers if w.state in LIVE]
    # Old workers of a roll in progress are on their way out: they do not count against
    # max_workers (the roll replaces them one for one), but they may hold the active flag.
    live = sorted((w for w in every if not w.old), key=_release_key)
    over = max(0, len(live) - max_workers)
    released, kept = live[:over], live[over:]
    stop = [w.id for w in released if w.state != WorkerState.RUNNING]
    drain = [w.id for w in released if w.state == WorkerState.RUNNING]

    holders = [*kept, *(w for w in every if w.old)]
    flagged = sorted((w for w in holders if w.active), key=lambda w: (not w.old, _release_key(w)))
    demote: list[str] = []
    promote: list[str] = []
    if len(flagged) > active_workers:
        demoted = flagged[: len(flagged) - active_workers]  # old, then idle ones first
        demote = [w.id for w in demoted]
        # An idle one was kept only for its flag; one per queued job stays to take it.
        idle = [w.id for w in demoted if w.state == WorkerState.IDLE and not w.old]
        stop += idle[: max(0, len(idle) - in_queue)]
    elif len(flagged) < active_workers:
        # Ready ones first (they serve now), then those on their way; the newest last.
        unflagged = sorted(
            (w for w in holders if not w.active and not w.old),
            key=lambda w: (w.state not in READY, w.state == WorkerState.THROTTLED, w.since, w.id),
        )
        promote = [w.id for w in unflagged[: active_workers - len(flagged)]]
    return ResizePlan(tuple(stop), tuple(drain), tuple(demote), tuple(promote))


def roll(workers: Iterable[FleetView], active_workers: int, replaced: int) -> RollPlan:
    """One step of a rolling redeploy. `replaced`: old ready workers retired in earlier steps
    (each was matched with a new ready worker, so a new worker retires one old one only).

    Start: a new worker for every old ready one not yet matched by a new worker that is ready
    or on its way. Retire: one old worker per unmatched new ready worker, idle ones first,
    while the ready workers left stay >= `active_workers`. When every new worker waits for a
    GPU that old workers hold (all throttled), one old worker above `active_workers` gives way.

    Two old idle workers, active_workers 2, a first step: nothing new is ready, so none
    retires; two new start.

    >>> old = (FleetView("o1", WorkerState.IDLE, 10, old=True),
    ...        FleetView("o2", WorkerState.IDLE, 20, old=True))
    >>> roll(old, active_workers=2, replaced=0)
    RollPlan(start=2, drain=(), stop=(), replaced=0, done=False)

    Later one new worker is ready, one still starting: ready = 2 old + 1 new = 3, 3 - 2 = 1
    may go, and one new is unmatched -> o1 (idle longest) retires; nothing more to start.

    >>> later = (*old, FleetView("n1", WorkerState.IDLE, 50),
    ...          FleetView("n2", WorkerState.INITIALIZING, 40))
    >>> roll(later, active_workers=2, replaced=0)
    RollPlan(start=0, drain=('o1',), stop=(), replaced=1, done=False)
    """
    every = list(workers)
    old_ready = sorted((w for w in every if w.old and w.state in READY), key=_release_key)
    old_other = tuple(w.id for w in every if w.old and w.state not in READY)
    new_ready = sum(1 for w in every if not w.old and w.state in READY)
    new_starting = [w for w in every if not w.old and w.state in STARTING]
    ready = len(old_ready) + new_ready
    unmatched = max(0, new_ready - replaced)
    spare = max(0, ready - active_workers)  # ready workers above the floor
    budget = min(unmatched, spare, len(old_ready))
    stuck = bool(new_starting) and all(w.state == WorkerState.THROTTLED for w in new_starting)
    if budget == 0 and unmatched == 0 and stuck:
        budget = min(1, spare, len(old_ready))  # free a GPU for a throttled new worker
    retired = old_ready[:budget]
    left = len(old_ready) - budget
    start = max(0, left - len(new_starting) - max(0, unmatched - budget))
    return RollPlan(
        start=start,
        drain=tuple(w.id for w in retired),
        stop=old_other,
        replaced=replaced + budget,
        done=left == 0,
    )
