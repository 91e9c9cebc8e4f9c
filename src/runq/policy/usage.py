"""What an endpoint's workers did in a window of time: cold starts, FlashBoot revivals, billed
seconds split by phase, and cost. Pure: the caller passes the window's ends.

The window is (`since`, `until`]. Billed seconds and cost are the ledger's own
(`runq.policy.cost.worker_cost`) read at `until` less the same read at `since`, so a window's
figures add up with the ledger's and the windows next to each other add up to their union.

- A **cold start** is a worker's first INITIALIZING step (a worker starts from nothing once;
  THROTTLED before it, waiting for a GPU, is not part of it), counted in the window it began.
- A **revival** is a PARKED worker made IDLE again (FlashBoot): no cold start, counted apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runq.core.worker import Transition, WorkerState
from runq.policy.cost import Rate, WorkerCost, worker_cost

__all__ = ["Timeline", "Usage", "endpoint_usage", "total", "worker_usage"]

Timeline = tuple[Sequence[Transition], Rate, bool]  # (transitions, rate, active), as the ledger


@dataclass(frozen=True)
class Usage:
    """Workers' activity over a window. `cold_start_s`, `idle_s` and `running_s` are parts of
    `billed_s`; the rest of it (`other_s`) is unhealthy time, and parked or throttled time of
    always-on workers."""

    cold_starts: int = 0
    revivals: int = 0
    billed_s: float = 0.0
    cold_start_s: float = 0.0
    idle_s: float = 0.0
    running_s: float = 0.0
    cost: float = 0.0

    @property
    def other_s(self) -> float:
        return max(0.0, self.billed_s - self.cold_start_s - self.idle_s - self.running_s)


def _bill(transitions: Sequence[Transition], rate: Rate, active: bool, at: float) -> WorkerCost:
    if not transitions or at <= transitions[0].at:
        return WorkerCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # also keeps -inf out of it
    return worker_cost(transitions, rate, active, at)


def worker_usage(
    transitions: Sequence[Transition], rate: Rate, active: bool, since: float, until: float
) -> Usage:
    """One worker's usage in (`since`, `until`]; `since` may be -inf for its whole life.

    A flex worker at $0.002/s: cold start 0-30 s, idle to 40, running to 90, idle to 100,
    parked to 180, revived (idle) to 200, then terminated. The window (50, 190]: running
    50-90 (40 s), idle 90-100 and 180-190 (20 s), parked time not billed; no cold start
    began in it, one revival (at 180):

    >>> history = [
    ...     Transition(0, WorkerState.INITIALIZING),
    ...     Transition(30, WorkerState.IDLE),
    ...     Transition(40, WorkerState.RUNNING),
    ...     Transition(90, WorkerState.IDLE),
    ...     Transition(100, WorkerState.PARKED),
    ...     Transition(180, WorkerState.IDLE),
    ...     Transition(200, WorkerState.TERMINATED),
    ... ]
    >>> used = worker_usage(history, Rate(0.002, 0.0015), False, since=50, until=190)
    >>> used.cold_starts, used.revivals, used.billed_s, used.running_s, used.idle_s
    (0, 1, 60.0, 40.0, 20.0)
    >>> round(used.cost, 6)  # 60 s * $0.002
    0.12
    """
    if until <= since:
        return Usage()
    after, before = _bill(transitions, rate, active, until), _bill(transitions, rate, active, since)
    cold_starts = revivals = 0
    started = False
    for previous, step in zip([None, *transitions], transitions, strict=False):
        inside = since < step.at <= until
        if step.state is WorkerState.INITIALIZING and not started:
            started = True
            cold_starts += inside
        elif (
            step.state is WorkerState.IDLE
            and previous is not None
            and previous.state is WorkerState.PARKED
        ):
            revivals += inside
    return Usage(
        cold_starts=cold_starts,
        revivals=revivals,
        billed_s=after.billed_s - before.billed_s,
        cold_start_s=after.cold_start_s - before.cold_start_s,
        idle_s=after.idle_s - before.idle_s,
        running_s=after.running_s - before.running_s,
        cost=after.cost - before.cost,
    )


def total(usages: Iterable[Usage]) -> Usage:
    """The sum of several workers' (or windows') usage.

    >>> a = Usage(1, 0, 10.0, 2.0, 3.0, 5.0, 0.02)
    >>> b = Usage(0, 2, 5.0, 0.0, 1.0, 4.0, 0.01)
    >>> both = total([a, b])
    >>> both.cold_starts, both.revivals, both.billed_s, both.running_s, round(both.cost, 6)
    (1, 2, 15.0, 9.0, 0.03)
    """
    every = list(usages)
    return Usage(
        cold_starts=sum(u.cold_starts for u in every),
        revivals=sum(u.revivals for u in every),
        billed_s=math.fsum(u.billed_s for u in every),
        cold_start_s=math.fsum(u.cold_start_s for u in every),
        idle_s=math.fsum(u.idle_s for u in every),
        running_s=math.fsum(u.running_s for u in every),
        cost=math.fsum(u.cost for u in every),
    )


def endpoint_usage(timelines: Iterable[Timeline], since: float, until: float) -> Usage:
    """Every worker's usage in (`since`, `until`], summed: an endpoint's window."""
    return total(
        worker_usage(steps, rate, active, since, until) for steps, rate, active in timelines
    )
