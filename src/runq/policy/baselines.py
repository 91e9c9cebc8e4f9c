"""Other systems' scaling policies, in runq's plan() shape, for the simulator to compare with.

Not runq scalers: an endpoint cannot select them. Each is a pure step
`(snapshot, state) -> (Target, state)`; the small callable classes carry the state between
decisions so that the simulator can call them like `runq.policy.scaling.plan`. They act on
workers through `scaling.actions`, so only the decision differs from runq's scalers. None of
them has FlashBoot: a worker they let go is stopped, and comes back with a cold start.

Parameters are each system's documented defaults, cited where they are set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from runq.core.spec import ScalingSection
from runq.core.worker import WorkerState
from runq.policy import keepalive
from runq.policy.scaling import (
    LIVE,
    ScalingPlan,
    ScalingSnapshot,
    Target,
    actions,
)

READY = frozenset({WorkerState.IDLE, WorkerState.RUNNING})


def _count(snapshot: ScalingSnapshot, states: frozenset[WorkerState]) -> int:
    return sum(1 for w in snapshot.workers if w.state in states)


def _idle_within(snapshot: ScalingSnapshot, seconds: float) -> int:
    return sum(
        1
        for w in snapshot.workers
        if w.state == WorkerState.IDLE and snapshot.now - w.since < seconds
    )


def _bounded(desired: int, scaling: ScalingSection) -> int:
    return min(max(desired, scaling.active_workers), scaling.max_workers)


# --- fixed keep-alive (AWS Lambda / OpenWhisk style) ------------------------------------------
@dataclass(frozen=True)
class FixedKeepAlive:
    """One worker per job in flight; an idle worker is kept `keep_alive_s` then stopped.

    Ten minutes is OpenWhisk's default and the fixed policy ATC'20 compares against.
    """

    keep_alive_s: float = 600.0

    def __call__(
        self, snapshot: ScalingSnapshot, scaling: ScalingSection, park_retention_s: float
    ) -> ScalingPlan:
        work = snapshot.in_queue + snapshot.in_progress
        busy = _count(snapshot, LIVE - {WorkerState.IDLE})
        held = busy + _idle_within(snapshot, self.keep_alive_s)
        desired = _bounded(max(work, held), scaling)
        reason = f"{work} jobs, {held} held by the {self.keep_alive_s:g}s keep-alive"
        target = Target(desired, reason, self.keep_alive_s, park_retention_s)
        return actions(snapshot, target, flashboot=False)


# --- Knative KPA ------------------------------------------------------------------------------
# Knative Serving defaults (config-autoscaler): stable-window 60s, panic-window-percentage 10%
# (6 s), panic-threshold-percentage 200%, max-scale-down-rate 2, scale-to-zero-grace-period 30s.
# Target concurrency 1 per pod: a GPU worker runs one job at a time (containerConcurrency 1).
KPA_STABLE_S = 60.0
KPA_PANIC_S = 6.0
KPA_PANIC_THRESHOLD = 2.0
KPA_MAX_SCALE_DOWN_RATE = 2.0
KPA_ZERO_GRACE_S = 30.0
KPA_TARGET = 1.0


@dataclass(frozen=True)
class KpaState:
    samples: tuple[tuple[float, int], ...] = ()  # (at, concurrency), the last stable window
    panic_until: float = -math.inf
    desired: int = 0
    zero_since: float | None = None  # when the stable desire first fell to 0


def kpa_step(
    snapshot: ScalingSnapshot, scaling: ScalingSection, state: KpaState
) -> tuple[Target, KpaState]:
    """One KPA decision: averages of concurrency (queued + running, as the activator and
    queue-proxy count it) over the stable and panic windows, divided by the target.

    Panic when the panic-window desire is at least twice the ready pods: then scale on the
    panic window and never down until a stable window has passed without panic.
    """
    now = snapshot.now
    concurrency = snapshot.in_queue + snapshot.in_progress
    samples = (*tuple(s for s in state.samples if s[0] > now - KPA_STABLE_S), (now, concurrency))
    stable = sum(c for _, c in samples) / len(samples)
    recent = [c for at, c in samples if at > now - KPA_PANIC_S]
    panic = sum(recent) / len(recent)
    stable_want = math.ceil(round(stable / KPA_TARGET, 9))
    panic_want = math.ceil(round(panic / KPA_TARGET, 9))
    ready = _count(snapshot, READY)
    live = _count(snapshot, LIVE)
    panic_until = state.panic_until
    if ready > 0 and panic_want >= KPA_PANIC_THRESHOLD * ready:
        panic_until = now + KPA_STABLE_S
    if now < panic_until:
        want, mode = max(panic_want, state.desired), "panic"
    else:
        # Scale down at most by half per decision (max-scale-down-rate 2: Knative floors
        # ready / 2, so one pod may go to zero).
        want, mode = max(stable_want, math.floor(ready / KPA_MAX_SCALE_DOWN_RATE)), "stable"
    want = max(want, 1 if concurrency else 0)
    zero_since = state.zero_since
    if want == 0:
        zero_since = now if zero_since is None else zero_since
        if now - zero_since < KPA_ZERO_GRACE_S and live > 0:
            want = 1  # scale-to-zero grace period
    else:
        zero_since = None
    desired = _bounded(want, scaling)
    reason = f"KPA {mode}: concurrency {stable:.2f} (60s) {panic:.2f} (6s)"
    target = Target(desired, reason, 0.0, math.inf)
    return target, KpaState(samples, panic_until, desired, zero_since)


@dataclass
class KnativeKPA:
    state: KpaState = field(default_factory=KpaState)

    def __call__(
        self, snapshot: ScalingSnapshot, scaling: ScalingSection, park_retention_s: float
    ) -> ScalingPlan:
        target, self.state = kpa_step(snapshot, scaling, self.state)
        return actions(snapshot, target, flashboot=False)


# --- Ray Serve --------------------------------------------------------------------------------
# Ray Serve autoscaling_config defaults: target_ongoing_requests 2, upscale_delay_s 30,
# downscale_delay_s 600, metrics_interval_s 10, look_back_period_s 30, upscaling and
# downscaling factors 1. min_replicas defaults to 1 (always on); set to 0 here so that it
# scales to zero like the others, as a serverless deployment would configure it. From zero it
# goes to 1 at once (Ray's special case for 0 replicas with requests waiting).
RAY_TARGET_ONGOING = 2.0
RAY_UPSCALE_DELAY_S = 30.0
RAY_DOWNSCALE_DELAY_S = 600.0
RAY_METRICS_INTERVAL_S = 10.0
RAY_LOOK_BACK_S = 30.0


@dataclass(frozen=True)
class RayState:
    samples: tuple[tuple[float, int], ...] = ()  # (at, ongoing), the look-back period
    reported: float = 0.0  # the average the controller last received
    reported_at: float = -math.inf
    target: int = 0
    up_since: float | None = None
    down_since: float | None = None


def ray_step(
    snapshot: ScalingSnapshot, scaling: ScalingSection, state: RayState
) -> tuple[Target, RayState]:
    """One Ray Serve decision: ceil(average ongoing requests / 2), applied once the wish to
    grow has lasted 30 s or the wish to shrink 600 s. The controller sees an average over the
    last 30 s, refreshed every 10 s (metrics push interval)."""
    now = snapshot.now
    ongoing = snapshot.in_queue + snapshot.in_progress
    samples = (*tuple(s for s in state.samples if s[0] > now - RAY_LOOK_BACK_S), (now, ongoing))
    reported, reported_at = state.reported, state.reported_at
    if now - reported_at >= RAY_METRICS_INTERVAL_S:
        reported, reported_at = sum(c for _, c in samples) / len(samples), now
    wish = _bounded(math.ceil(round(reported / RAY_TARGET_ONGOING, 9)), scaling)
    target, up_since, down_since = state.target, state.up_since, state.down_since
    if target == 0 and ongoing > 0:
        # Ray's replica_queue_length_autoscaling_policy: from zero, ceil(1 x upscaling factor).
        target, up_since, down_since = 1, None, None
    elif wish > target:
        up_since, down_since = (now if up_since is None else up_since), None
        if now - up_since >= RAY_UPSCALE_DELAY_S:
            target, up_since = wish, None
    elif wish < target:
        up_since, down_since = None, (now if down_since is None else down_since)
        if now - down_since >= RAY_DOWNSCALE_DELAY_S:
            target, down_since = wish, None
    else:
        up_since = down_since = None
    reason = f"Ray Serve: {reported:.2f} ongoing (avg) / {RAY_TARGET_ONGOING:g} -> {wish}"
    new = RayState(samples, reported, reported_at, target, up_since, down_since)
    return Target(target, reason, 0.0, math.inf), new


@dataclass
class RayServe:
    state: RayState = field(default_factory=RayState)

    def __call__(
        self, snapshot: ScalingSnapshot, scaling: ScalingSection, park_retention_s: float
    ) -> ScalingPlan:
        target, self.state = ray_step(snapshot, scaling, self.state)
        return actions(snapshot, target, flashboot=False)


# --- ATC'20 hybrid histogram ------------------------------------------------------------------
ATC_FALLBACK_KEEP_ALIVE_S = keepalive.RANGE_S  # not representative: keep alive for the range


def hybrid_histogram(
    snapshot: ScalingSnapshot, scaling: ScalingSection, park_retention_s: float = 0.0
) -> ScalingPlan:
    """Shahrad et al., ATC'20: one worker per job in flight (Azure Functions' concurrency 1),
    windows from the histogram of idle gaps (4 h range, 5th / 99th percentiles, 10 % margins;
    runq.policy.keepalive). When the pre-warm window is shorter than a cold start, workers are
    kept alive for the keep-alive window; otherwise unloaded at once and one is pre-warmed a
    cold start before the pre-warm window. Gaps are between arrivals (ATC'20 measures from the
    end of one execution; for short jobs the difference is the execution time). Fallback when
    the histogram is not representative: a fixed keep-alive of the 4 h range.
    """
    cold_start = snapshot.cold_start_s if snapshot.cold_start_s is not None else 10.0
    windows = keepalive.gap_windows(snapshot.recent_arrivals)
    work = snapshot.in_queue + snapshot.in_progress
    if windows is None:
        idle_s, floor, why = ATC_FALLBACK_KEEP_ALIVE_S, 0, "histogram not representative"
    else:
        since_last = snapshot.now - snapshot.recent_arrivals[-1]
        opens = windows.prewarm_s - cold_start
        floor = 1 if opens <= since_last < windows.keep_alive_s else 0
        idle_s = windows.keep_alive_s if windows.prewarm_s <= cold_start else 0.0
        why = f"pre-warm {windows.prewarm_s:.3g}s, keep-alive {windows.keep_alive_s:.3g}s"
    busy = _count(snapshot, LIVE - {WorkerState.IDLE})
    held = busy + _idle_within(snapshot, idle_s)
    desired = _bounded(max(work, held, floor), scaling)
    target = Target(desired, f"ATC'20 hybrid histogram: {work} jobs, {why}", idle_s, math.inf)
    return actions(snapshot, target, flashboot=False)


__all__ = [
    "FixedKeepAlive",
    "KnativeKPA",
    "KpaState",
    "RayServe",
    "RayState",
    "hybrid_histogram",
    "kpa_step",
    "ray_step",
]
