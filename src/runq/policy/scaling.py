"""How many workers an endpoint should have, and which ones to start, revive, park or stop.

Pure: the scheduler passes a frozen snapshot with `now` in it and carries out the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from runq.core.spec import SCALERS, ScalingSection
from runq.core.worker import MOVES, WorkerState
from runq.policy import keepalive, slo

# Live: serving, or already asked for (a throttled worker waits for a GPU; asking again would
# start a second one for the same need).
LIVE = frozenset(
    {WorkerState.INITIALIZING, WorkerState.IDLE, WorkerState.RUNNING, WorkerState.THROTTLED}
)
# Busy or on its way: never counted as spare capacity to shed.
BUSY = frozenset({WorkerState.INITIALIZING, WorkerState.RUNNING, WorkerState.THROTTLED})
PARK_RETENTION_S = 600.0  # a parked worker is stopped after this long without demand
DEFAULT_COLD_START_S = 10.0  # until one is measured
# How much history callers keep for the snapshot: enough for a histogram of idle gaps and a
# mean execution time, little enough to copy every tick.
RECENT_ARRIVALS = 512
RECENT_EXECUTIONS = 100


@dataclass(frozen=True)
class WorkerView:
    """One worker as the policy sees it."""

    id: str
    state: WorkerState
    since: float  # when it entered `state` (for IDLE: idle since; for PARKED: parked since)
    active: bool = False  # one of the endpoint's always-on (active) workers


@dataclass(frozen=True)
class ScalingSnapshot:
    """An endpoint's demand and workers at one moment."""

    now: float
    in_queue: int
    in_progress: int
    oldest_queued_at: float | None  # created_at of the oldest queued job; None: queue empty
    workers: tuple[WorkerView, ...] = ()  # every non-terminated worker of the endpoint
    # What runq's own scalers ("slo", "histogram") learn from; the others ignore them.
    recent_arrivals: tuple[float, ...] = ()  # created_at of recent jobs, oldest first
    recent_execution_s: tuple[float, ...] = ()  # execution times of recent jobs, oldest last
    cold_start_s: float | None = None  # a typical measured cold start; None: none measured


@dataclass(frozen=True)
class ScalingPlan:
    """What the scheduler should do to one endpoint now."""

    desired: int  # workers that should be live (initializing + idle + running + throttled)
    start: int  # new workers to start
    revive: tuple[str, ...]  # parked worker ids to revive (preferred over starting new ones)
    park: tuple[str, ...]  # idle worker ids to park (flashboot on)
    stop: tuple[str, ...]  # unhealthy, retired idle (flashboot off), parked past retention
    reason: str  # one short human sentence, e.g. "queue delay 5.2s > 4s: 2 -> 3 workers"


@dataclass(frozen=True)
class Target:
    """A scaler's answer: how many live workers, why, and how long idle and parked ones stay."""

    desired: int
    reason: str
    idle_timeout_s: float  # an idle worker is retired (parked or stopped) after this long
    park_retention_s: float  # a parked worker is stopped after this long


def desired_workers(snapshot: ScalingSnapshot, scaling: ScalingSection) -> tuple[int, str]:
    """How many live workers the endpoint should have, and why, in one sentence.

    request_count: one worker per `requests_per_worker` jobs, queued or in progress, rounded
    up. 6 jobs at 4 per worker: ceil(6 / 4) = 2.

    >>> jobs = ScalingSnapshot(now=100, in_queue=5, in_progress=1, oldest_queued_at=99)
    >>> desired_workers(jobs, ScalingSection(scaler="request_count", requests_per_worker=4))
    (2, '6 jobs at 4 per worker: 0 -> 2 workers')

    queue_delay: one more worker per decision while the oldest queued job has waited longer
    than `queue_delay_s`, but never more workers than jobs. Here 100 - 94.8 = 5.2s > 4s with
    2 running workers and 3 jobs, so min(2 + 1, 3) = 3.

    >>> running = tuple(WorkerView(f"w{n}", WorkerState.RUNNING, 90) for n in (1, 2))
    >>> late = ScalingSnapshot(100, in_queue=1, in_progress=2, oldest_queued_at=94.8,
    ...                        workers=running)
    >>> desired_workers(late, ScalingSection(scaler="queue_delay", queue_delay_s=4))
    (3, 'queue delay 5.2s > 4s: 2 -> 3 workers')

    Work with no live worker asks for one at once: a cold endpoint does not wait out the delay.
    Under the delay it keeps what is busy or starting plus idle workers inside their idle
    timeout (and, while jobs are queued, up to one expired idle worker per queued job, which is
    about to take it), so it never asks to shrink inside the idle timeout; with no work and
    every worker idle past its timeout it asks for 0.

    slo (runq's): enough workers that the predicted p95 queue delay stays under
    `p95_delay_target_s` (see `runq.policy.slo`); histogram (runq's): queue_delay's growth
    with keep-alive and pre-warming from the idle-gap histogram (`runq.policy.keepalive`).
    Both also take their idle time and parked retention from that histogram.

    Every scaler then clamps to [active_workers, max_workers].

    Raises:
        ValueError: an unknown scaler, or requests_per_worker below 1.
    """
    target = decide(snapshot, scaling, PARK_RETENTION_S)
    return target.desired, target.reason


def decide(snapshot: ScalingSnapshot, scaling: ScalingSection, park_retention_s: float) -> Target:
    """The scaler's full answer: `desired_workers` plus the idle time and retention it uses."""
    live = _count(snapshot.workers, LIVE)
    idle_s, retention_s = scaling.idle_timeout_s, park_retention_s
    if scaling.scaler == "request_count":
        wanted, why = _by_request_count(snapshot, scaling)
    elif scaling.scaler == "queue_delay":
        wanted, why = _by_queue_delay(snapshot, scaling, live, idle_s)
    elif scaling.scaler in ("slo", "histogram"):
        parked = _count(snapshot.workers, frozenset({WorkerState.PARKED}))
        kept = keepalive.keep_alive(
            now=snapshot.now,
            arrivals=snapshot.recent_arrivals,
            cold_start_s=_cold_start(snapshot),
            flashboot=scaling.flashboot,
            live=live,
            parked=parked,
            idle_timeout_s=scaling.idle_timeout_s,
            park_retention_s=park_retention_s,
        )
        idle_s, retention_s = kept.idle_s, kept.retention_s
        if scaling.scaler == "slo":
            wanted, why = _by_slo(snapshot, scaling, live, parked, idle_s)
        else:
            wanted, why = _by_queue_delay(snapshot, scaling, live, idle_s)
        if kept.floor > wanted:
            wanted, why = kept.floor, why + kept.reason
    else:
        raise ValueError(f"unknown scaler {scaling.scaler!r}: expected one of {', '.join(SCALERS)}")
    desired = min(max(wanted, scaling.active_workers), scaling.max_workers)
    if desired > wanted:
        why += f", raised to active_workers {scaling.active_workers}"
    elif desired < wanted:
        why += f", capped at max_workers {scaling.max_workers}"
    return Target(desired, f"{why}: {live} -> {desired} workers", idle_s, retention_s)


def _cold_start(snapshot: ScalingSnapshot) -> float:
    return DEFAULT_COLD_START_S if snapshot.cold_start_s is None else snapshot.cold_start_s


def _by_request_count(snapshot: ScalingSnapshot, scaling: ScalingSection) -> tuple[int, str]:
    per_worker = scaling.requests_per_worker
    if per_worker < 1:
        raise ValueError(f"requests_per_worker must be at least 1, got {per_worker}")
    work = snapshot.in_queue + snapshot.in_progress
    return -(-work // per_worker), f"{work} jobs at {per_worker} per worker"


def _by_queue_delay(
    snapshot: ScalingSnapshot, scaling: ScalingSection, live: int, idle_s: float
) -> tuple[int, str]:
    work = snapshot.in_queue + snapshot.in_progress
    if work > 0 and live == 0:
        return 1, f"{work} jobs and no live worker"
    held, fresh_idle = _held(snapshot, idle_s)
    oldest = snapshot.oldest_queued_at
    waited = snapshot.now - oldest if oldest is not None else 0.0
    delay = f"queue delay {waited:.1f}s"
    if waited > scaling.queue_delay_s:
        grown = min(live + 1, work)
        if grown > live:
            return grown, f"{delay} > {scaling.queue_delay_s:g}s"
        return max(held, grown), (
            f"{delay} > {scaling.queue_delay_s:g}s but already {live} workers for {work} jobs"
        )
    if work == 0:
        why = "no jobs"
        if fresh_idle:
            why += f", {fresh_idle} idle within the {idle_s:g}s idle timeout"
        return held, why
    return held, f"{delay} <= {scaling.queue_delay_s:g}s"


def _by_slo(
    snapshot: ScalingSnapshot, scaling: ScalingSection, live: int, parked: int, idle_s: float
) -> tuple[int, str]:
    work = snapshot.in_queue + snapshot.in_progress
    steady, backlog, why = slo.slo_workers(
        now=snapshot.now,
        arrivals=snapshot.recent_arrivals,
        executions=snapshot.recent_execution_s,
        cold_start_s=_cold_start(snapshot),
        in_queue=snapshot.in_queue,
        in_progress=snapshot.in_progress,
        oldest_queued_at=snapshot.oldest_queued_at,
        target_s=scaling.p95_delay_target_s,
        limit=scaling.max_workers,
    )
    held, _ = _held(snapshot, idle_s)
    wanted = max(backlog, held, 1 if work else 0)
    if scaling.flashboot:
        # A parked worker revives in milliseconds: it is capacity without being billed. Only
        # a pool (live + parked) short of the steady need is worth growing, since a new
        # worker takes a cold start.
        if live + parked < steady:
            wanted = max(wanted, steady)
    else:
        wanted = max(wanted, steady)
    return wanted, why


def _held(snapshot: ScalingSnapshot, idle_s: float) -> tuple[int, int]:
    """Workers kept under the delay, and how many of them are fresh idle ones."""
    busy = _count(snapshot.workers, BUSY)
    fresh = expired = 0
    for worker in snapshot.workers:
        if worker.state == WorkerState.IDLE:
            if snapshot.now - worker.since < idle_s:
                fresh += 1
            else:
                expired += 1
    # An idle worker with a job queued for it is about to run it: shedding it would make that
    # job wait for a cold start.
    return busy + fresh + min(expired, snapshot.in_queue), fresh


def plan(
    snapshot: ScalingSnapshot, scaling: ScalingSection, park_retention_s: float = PARK_RETENTION_S
) -> ScalingPlan:
    """Turns the desired count into actions on named workers.

    Up: revive parked workers first, most recently parked first (warmest, and the ones the
    retention window keeps longest), then start new ones for the rest.
    Down: only IDLE workers idle for at least `idle_timeout_s`, longest idle first, never an
    active one; parked when `flashboot` is on, else stopped. Unhealthy workers are always
    stopped, and parked ones once parked for `park_retention_s` (unless revived now).
    `stop` lists unhealthy, then retired idle, then expired parked workers. runq's own
    scalers choose their idle time and retention from the idle-gap histogram instead.

    Three idle workers and no jobs, idle timeout 5s at now = 100: w1 idle since 90 (10s) and
    w2 since 93 (7s) are past it, w3 since 98 (2s) is not. Desired = 1 (w3), so live 3 -> 1
    retires w1 then w2, longest idle first; flashboot parks them.

    >>> idle = (WorkerView("w1", WorkerState.IDLE, 90), WorkerView("w2", WorkerState.IDLE, 93),
    ...         WorkerView("w3", WorkerState.IDLE, 98))
    >>> quiet = ScalingSnapshot(now=100, in_queue=0, in_progress=0, oldest_queued_at=None,
    ...                         workers=idle)
    >>> decision = plan(quiet, ScalingSection(idle_timeout_s=5, flashboot=True))
    >>> decision.desired, decision.park, decision.stop
    (1, ('w1', 'w2'), ())
    >>> decision.reason
    'no jobs, 1 idle within the 5s idle timeout: 3 -> 1 workers'
    """
    target = decide(snapshot, scaling, park_retention_s)
    return actions(snapshot, target, scaling.flashboot)


def actions(snapshot: ScalingSnapshot, target: Target, flashboot: bool) -> ScalingPlan:
    """The actions that bring the endpoint to `target` (see `plan`). Baseline policies that
    are not runq scalers (runq.policy.baselines) reuse it, so they act on workers alike."""
    desired, now = target.desired, snapshot.now
    live = _count(snapshot.workers, LIVE)
    parked = [w for w in snapshot.workers if w.state == WorkerState.PARKED]

    revive: tuple[str, ...] = ()
    start = 0
    retired: tuple[str, ...] = ()
    if desired > live:
        warmest = sorted(parked, key=lambda w: (-w.since, w.id))
        revive = tuple(w.id for w in warmest[: desired - live])
        start = desired - live - len(revive)
    elif live > desired:
        spare = [
            w
            for w in snapshot.workers
            if w.state == WorkerState.IDLE
            and not w.active
            and now - w.since >= target.idle_timeout_s
        ]
        spare.sort(key=lambda w: (w.since, w.id))
        retired = tuple(w.id for w in spare[: live - desired])

    unhealthy = tuple(w.id for w in snapshot.workers if w.state == WorkerState.UNHEALTHY)
    expired = tuple(
        w.id
        for w in sorted(parked, key=lambda w: (w.since, w.id))
        if now - w.since >= target.park_retention_s and w.id not in revive
    )
    return ScalingPlan(
        desired=desired,
        start=start,
        revive=revive,
        park=retired if flashboot else (),
        stop=unhealthy + (() if flashboot else retired) + expired,
        reason=target.reason,
    )


def still_applicable(
    decision: ScalingPlan,
    seen: tuple[WorkerView, ...],
    current: Mapping[str, WorkerState],
) -> ScalingPlan:
    """The plan's actions whose worker is still as the snapshot saw it (pure).

    The live scheduler awaits the store between taking its snapshot and acting, and a worker
    may take a job, exit or be stopped meanwhile: its action is then dropped (the next tick
    decides again), never applied to a state it was not meant for. Every kept action is a move
    `core.worker.MOVES` allows. The simulator applies its plans through the same step.

    w1 was idle when seen, then took a job: parking it now would stop a running job.

    >>> seen = (WorkerView("w1", WorkerState.IDLE, 0.0), WorkerView("w2", WorkerState.IDLE, 0.0))
    >>> decision = ScalingPlan(0, 0, (), ("w1", "w2"), (), "scale down")
    >>> still_applicable(decision, seen, {"w1": WorkerState.RUNNING, "w2": WorkerState.IDLE}).park
    ('w2',)
    """
    then = {w.id: w.state for w in seen}

    def keep(ids: tuple[str, ...], to: WorkerState) -> tuple[str, ...]:
        return tuple(
            worker
            for worker in ids
            if worker in current
            and current[worker] == then.get(worker)
            and to in MOVES[current[worker]]
        )

    return replace(
        decision,
        revive=keep(decision.revive, WorkerState.IDLE),
        park=keep(decision.park, WorkerState.PARKED),
        stop=keep(decision.stop, WorkerState.TERMINATED),
    )


def recommend_active_workers(requests_per_minute: float, seconds_per_request: float) -> int:
    """Always-on workers for a steady load: requests per minute x seconds each / 60, rounded up.

    That is the number of workers busy on average (Little's law). 6 requests a minute of 30s
    each keep 6 x 30 / 60 = 3 workers busy:

    >>> recommend_active_workers(6, 30)
    3
    >>> recommend_active_workers(1, 1)  # 1 x 1 / 60 = 0.017, rounded up
    1
    >>> recommend_active_workers(0, 30)
    0

    Raises:
        ValueError: either input negative, NaN or infinite.
    """
    for name, value in (
        ("requests_per_minute", requests_per_minute),
        ("seconds_per_request", seconds_per_request),
    ):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    # Rounded first so that float noise (3.0000000000000004) does not add a whole worker.
    return math.ceil(round(requests_per_minute * seconds_per_request / 60, 9))


def _count(workers: Iterable[WorkerView], states: frozenset[WorkerState]) -> int:
    return sum(1 for worker in workers if worker.state in states)
