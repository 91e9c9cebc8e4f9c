"""What a worker, a job and an endpoint cost: the per-second ledger, as RunPod Serverless bills.

A worker's history is its transitions; each state lasts from its transition to the next one,
and the last state until `until` (now) unless it is TERMINATED. Time after `until` is never
billed, so a ledger can be read as of any moment.

Billing rules:

- A **flex** worker (`active=False`) is billed `flex_per_s * gpus` from when it starts (first
  INITIALIZING) until it stops (TERMINATED): cold start and idle time included. INITIALIZING,
  IDLE, RUNNING and UNHEALTHY are billed (an unhealthy worker's process is still there until it
  is terminated). THROTTLED (wanted, no GPU: nothing runs) and PARKED (FlashBoot: frozen) are
  not billed.
- An **active** worker (`active=True`, always on) is billed `active_per_s * gpus` for every
  second from its first transition until TERMINATED or `until`, in every state, parked and
  throttled included: an always-on worker is paid for whatever it does.
- After TERMINATED nothing is billed, whatever follows it.
- Seconds are billed exactly, as floats. RunPod rounds up to whole seconds; runq does not, so
  that tests stay simple and ledgers are additive (a worker's cost equals the sum of its
  parts, an endpoint's the sum of its workers').
- **Cold start** is the INITIALIZING time from the first INITIALIZING until the first IDLE or
  RUNNING. A revival from PARKED is not a cold start. A worker that never got ready has all its
  INITIALIZING time as cold start (and any UNHEALTHY time after it as neither cold nor idle).
- **Per job**: a job's execution is its own span * its worker's per-second price (clipped to
  `until` while it runs). Its worker's cold-start and idle cost are split equally among the jobs
  the worker ran; a worker that ran no job keeps them, and they show only in the worker and
  endpoint totals.

The worker's `Transition` is `runq.core.worker.Transition`, re-exported here, so the fleet's own
record of a worker is what gets priced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runq.core.worker import Transition, WorkerState

__all__ = [
    "EndpointCost",
    "JobCost",
    "JobSpan",
    "Rate",
    "Transition",
    "WorkerCost",
    "endpoint_cost",
    "job_costs",
    "worker_cost",
]

# States a flex worker is billed in; an active worker is billed in every state but TERMINATED.
FLEX_BILLED = frozenset(
    {WorkerState.INITIALIZING, WorkerState.IDLE, WorkerState.RUNNING, WorkerState.UNHEALTHY}
)
READY = frozenset({WorkerState.IDLE, WorkerState.RUNNING})


@dataclass(frozen=True)
class Rate:
    """A worker's prices in USD per second per GPU, and how many GPUs it holds.

    A CPU worker costs 0: give it a price of 0 or `gpus=0`.
    """

    flex_per_s: float
    active_per_s: float
    gpus: int = 1

    def __post_init__(self) -> None:
        if self.flex_per_s < 0 or self.active_per_s < 0 or self.gpus < 0:
            raise ValueError(f"a rate cannot be negative: {self}")

    def per_s(self, active: bool) -> float:
        """USD per second for the whole worker.

        >>> Rate(flex_per_s=0.00025, active_per_s=0.0002, gpus=2).per_s(active=False)
        0.0005
        """
        return (self.active_per_s if active else self.flex_per_s) * self.gpus


@dataclass(frozen=True)
class WorkerCost:
    """One worker's bill. `cold_start_s`, `idle_s` and `running_s` are parts of `billed_s`.

    What is billed but in none of the three parts: UNHEALTHY time, and for an active worker its
    PARKED and THROTTLED time.
    """

    billed_s: float
    cost: float
    cold_start_s: float
    cold_start_cost: float
    idle_s: float
    idle_cost: float
    running_s: float
    running_cost: float


def worker_cost(
    transitions: Sequence[Transition], rate: Rate, active: bool, until: float
) -> WorkerCost:
    """Price one worker's history up to `until`.

    A flex worker on one GPU at $0.002/s: 30 s cold start, 20 s idle, 50 s running, 80 s
    parked (not billed), then terminated, asked about long after:

    >>> history = [
    ...     Transition(0, WorkerState.INITIALIZING),
    ...     Transition(30, WorkerState.IDLE),
    ...     Transition(40, WorkerState.RUNNING),
    ...     Transition(90, WorkerState.IDLE),
    ...     Transition(100, WorkerState.PARKED),
    ...     Transition(180, WorkerState.TERMINATED),
    ... ]
    >>> bill = worker_cost(history, Rate(0.002, 0.0015), active=False, until=1000)
    >>> bill.billed_s, round(bill.cost, 6)  # 30 + 20 + 50 = 100 s; 100 * 0.002 = $0.20
    (100.0, 0.2)
    >>> bill.cold_start_s, bill.idle_s, bill.running_s
    (30.0, 20.0, 50.0)

    The same worker kept active at $0.0015/s is billed for all 180 s, parked time included:

    >>> round(worker_cost(history, Rate(0.002, 0.0015), active=True, until=1000).cost, 6)
    0.27
    """
    price = rate.per_s(active)
    billed = cold = idle = running = 0.0
    ready = False
    for i, step in enumerate(transitions):
        if step.state is WorkerState.TERMINATED:
            break
        end = transitions[i + 1].at if i + 1 < len(transitions) else until
        # Clipped to `until`; a clock that stepped back gives 0, never a negative bill.
        seconds = max(0.0, min(end, until) - min(step.at, until))
        ready = ready or step.state in READY
        if not (active or step.state in FLEX_BILLED):
            continue
        billed += seconds
        if step.state is WorkerState.INITIALIZING and not ready:
            cold += seconds
        elif step.state is WorkerState.IDLE:
            idle += seconds
        elif step.state is WorkerState.RUNNING:
            running += seconds
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


@dataclass(frozen=True)
class JobSpan:
    """When one job ran on one worker. `finished_at` is None while it still runs."""

    job_id: str
    worker_id: str
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class JobCost:
    """What one job cost: its own execution, and its shares of its workers' overhead."""

    job_id: str
    execution: float
    cold_start: float
    idle: float

    @property
    def total(self) -> float:
        return self.execution + self.cold_start + self.idle


def job_costs(
    spans: Sequence[JobSpan],
    workers: Mapping[str, tuple[Sequence[Transition], Rate, bool]],
    until: float,
) -> list[JobCost]:
    """Price each job: its execution, plus an equal share of its workers' cold start and idle.

    `workers` maps a worker id to `(transitions, rate, active)`. One `JobCost` per job id, in
    the order the job first appears in `spans`; a job that ran more than once (a retry) sums
    its spans, and takes one share from each worker it ran on.

    Why equal shares: simple to explain, and additive. For every worker that ran at least one
    job, the shares of its jobs add up to exactly its `cold_start_cost + idle_cost`, so no
    overhead is lost or counted twice between the job and the worker ledgers. Weighting by
    execution time would charge a long job for idle time that short jobs left, and be no more
    right.

    Execution is the job's own span, not shared: a worker running two jobs at once for 10 s
    bills 10 s of RUNNING, and each job 10 s of execution.

    A flex worker at $0.002/s: 30 s cold start, ran j1 for 20 s and j2 for 20 s, idle 30 s in
    all. Overhead is 30 * 0.002 + 30 * 0.002 = $0.12, $0.06 a job:

    >>> history = [
    ...     Transition(0, WorkerState.INITIALIZING),
    ...     Transition(30, WorkerState.IDLE),
    ...     Transition(40, WorkerState.RUNNING),
    ...     Transition(60, WorkerState.IDLE),
    ...     Transition(70, WorkerState.RUNNING),
    ...     Transition(90, WorkerState.IDLE),
    ...     Transition(100, WorkerState.TERMINATED),
    ... ]
    >>> spans = [JobSpan("j1", "w1", 40, 60), JobSpan("j2", "w1", 70, 90)]
    >>> j1, j2 = job_costs(spans, {"w1": (history, Rate(0.002, 0.0015), False)}, until=1000)
    >>> round(j1.execution, 6), round(j1.cold_start, 6), round(j1.idle, 6), round(j1.total, 6)
    (0.04, 0.03, 0.03, 0.1)

    Raises:
        ValueError: a span names a worker missing from `workers`.
    """
    ledgers: dict[str, tuple[WorkerCost, float]] = {}
    jobs_of: dict[str, dict[str, None]] = {}  # worker -> its distinct jobs, in order
    for span in spans:
        if span.worker_id not in workers:
            raise ValueError(f"job {span.job_id} ran on unknown worker {span.worker_id}")
        if span.worker_id not in ledgers:
            transitions, rate, active = workers[span.worker_id]
            bill = worker_cost(transitions, rate, active, until)
            ledgers[span.worker_id] = (bill, rate.per_s(active))
        jobs_of.setdefault(span.worker_id, {})[span.job_id] = None

    execution: dict[str, list[float]] = {}
    for span in spans:
        finished = until if span.finished_at is None else min(span.finished_at, until)
        seconds = max(0.0, finished - min(span.started_at, until))
        execution.setdefault(span.job_id, []).append(seconds * ledgers[span.worker_id][1])

    cold: dict[str, list[float]] = {job: [] for job in execution}
    idle: dict[str, list[float]] = {job: [] for job in execution}
    for worker_id, jobs in jobs_of.items():
        bill = ledgers[worker_id][0]
        for job in jobs:
            cold[job].append(bill.cold_start_cost / len(jobs))
            idle[job].append(bill.idle_cost / len(jobs))

    return [
        JobCost(job, math.fsum(parts), math.fsum(cold[job]), math.fsum(idle[job]))
        for job, parts in execution.items()
    ]


@dataclass(frozen=True)
class EndpointCost:
    """An endpoint's bill: the sum of its workers'."""

    cost: float
    billed_s: float
    cold_start_cost: float
    idle_cost: float
    running_cost: float
    workers: int


def endpoint_cost(workers: Sequence[WorkerCost]) -> EndpointCost:
    """Sum worker bills into an endpoint's.

    A worker billed 100 s for $0.20 and one billed 50 s for $0.10:

    >>> a = WorkerCost(100, 0.2, 30, 0.06, 20, 0.04, 50, 0.1)
    >>> b = WorkerCost(50, 0.1, 10, 0.02, 0, 0.0, 40, 0.08)
    >>> total = endpoint_cost([a, b])
    >>> round(total.cost, 6), total.billed_s, round(total.cold_start_cost, 6), total.workers
    (0.3, 150.0, 0.08, 2)
    """
    return EndpointCost(
        cost=math.fsum(w.cost for w in workers),
        billed_s=math.fsum(w.billed_s for w in workers),
        cold_start_cost=math.fsum(w.cold_start_cost for w in workers),
        idle_cost=math.fsum(w.idle_cost for w in workers),
        running_cost=math.fsum(w.running_cost for w in workers),
        workers=len(workers),
    )
