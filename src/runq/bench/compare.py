"""Scaling policies side by side in the simulator: one row per policy over one trace.

The rows are RunPod's default (queue delay 4 s, idle 5 s, FlashBoot), its request-count
scaler, a fixed 10-minute keep-alive, Knative's KPA, Ray Serve and the ATC'20 hybrid
histogram (runq.policy.baselines, their defaults), and runq's two scalers. runq's "slo" is
given RunPod's measured p95 on the same trace as its target: "as good a p95, for how much".

Used by benchmarks/policy_compare.py and its test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runq.bench.sim import ScalingPolicy, SimConfig, simulate
from runq.core.spec import ScalingSection
from runq.policy import baselines
from runq.policy.cost import Rate

RUNPOD = "runpod default"
OURS = "runq slo (ours)"
MIN_TARGET_S = 1.0  # a target below this is noise in the delay, not a goal


@dataclass(frozen=True)
class Row:
    policy: str
    jobs: int
    cold_starts: int
    p50_s: float
    p95_s: float
    p99_s: float
    busy_s: float  # worker-seconds running jobs
    idle_s: float  # worker-seconds billed but not running: idle and cold start
    cost: float  # USD

    @property
    def cold_start_ratio(self) -> float:
        """Cold starts per job (ATC'20's cold-start percentage, as a fraction)."""
        return self.cold_starts / self.jobs if self.jobs else 0.0

    @property
    def worker_s(self) -> float:
        return self.busy_s + self.idle_s


@dataclass(frozen=True)
class Candidate:
    name: str
    scaling: ScalingSection
    policy: Callable[[], ScalingPolicy | None]  # a fresh one per run: some carry state


def candidates(max_workers: int, slo_target_s: float) -> list[Candidate]:
    """Every policy of the comparison, on an endpoint scaled to zero with `max_workers`."""
    runq = ScalingSection(max_workers=max_workers)  # runq's defaults are RunPod's
    plain = ScalingSection(max_workers=max_workers, flashboot=False)
    return [
        Candidate(RUNPOD, runq, _none),
        Candidate(
            "request count", ScalingSection(max_workers=max_workers, scaler="request_count"), _none
        ),
        Candidate("fixed 10 min", plain, baselines.FixedKeepAlive),
        Candidate("knative kpa", plain, baselines.KnativeKPA),
        Candidate("ray serve", plain, baselines.RayServe),
        Candidate("atc20 histogram", plain, lambda: baselines.hybrid_histogram),
        Candidate(
            "runq histogram", ScalingSection(max_workers=max_workers, scaler="histogram"), _none
        ),
        Candidate(
            OURS,
            ScalingSection(max_workers=max_workers, scaler="slo", p95_delay_target_s=slo_target_s),
            _none,
        ),
    ]


def _none() -> ScalingPolicy | None:
    return None


def run_one(
    candidate: Candidate,
    arrivals: Sequence[float],
    execution_s: Sequence[float],
    *,
    cold_start_s: float,
    tick_s: float = 0.25,
    rate: Rate | None = None,
) -> Row:
    config = SimConfig(
        candidate.scaling,
        cold_start_s=cold_start_s,
        tick_s=tick_s,
        policy=candidate.policy(),
    )
    if rate is not None:
        config = dataclasses.replace(config, rate=rate)
    result = simulate(arrivals, execution_s, config)
    return Row(
        policy=candidate.name,
        jobs=len(result.jobs),
        cold_starts=result.cold_starts,
        p50_s=result.delay_percentile(0.50),
        p95_s=result.delay_percentile(0.95),
        p99_s=result.delay_percentile(0.99),
        busy_s=result.busy_s,
        idle_s=result.idle_s,
        cost=result.cost,
    )


def compare(
    arrivals: Sequence[float],
    execution_s: Sequence[float],
    *,
    cold_start_s: float,
    max_workers: int,
    tick_s: float = 0.25,
    only: Sequence[str] = (),
) -> list[Row]:
    """One row per policy (or those named in `only`; RunPod's always runs first, since its
    p95 is runq slo's target)."""
    first = candidates(max_workers, MIN_TARGET_S)[0]
    anchor = run_one(first, arrivals, execution_s, cold_start_s=cold_start_s, tick_s=tick_s)
    target = max(anchor.p95_s, MIN_TARGET_S)
    rows = [anchor]
    for candidate in candidates(max_workers, target)[1:]:
        if only and candidate.name not in only:
            continue
        rows.append(
            run_one(candidate, arrivals, execution_s, cold_start_s=cold_start_s, tick_s=tick_s)
        )
    return rows


def savings(rows: Sequence[Row], ours: str = OURS, anchor: str = RUNPOD) -> float:
    """Fraction of the anchor's cost that `ours` saves (negative: it costs more).

    >>> rows = [Row("a", 10, 1, 0, 5, 6, 10, 10, 2.0), Row("b", 10, 1, 0, 4, 6, 10, 5, 1.5)]
    >>> savings(rows, ours="b", anchor="a")
    0.25
    """
    by_name = {row.policy: row for row in rows}
    return 1 - by_name[ours].cost / by_name[anchor].cost


def dominated_by(rows: Sequence[Row], name: str = OURS) -> list[str]:
    """The rows at least as cheap and at least as fast at p95 as `name`, better in one.

    >>> rows = [Row("a", 1, 0, 0, 5, 5, 1, 1, 2.0), Row("b", 1, 0, 0, 4, 4, 1, 1, 1.0)]
    >>> dominated_by(rows, "a"), dominated_by(rows, "b")
    (['b'], [])
    """
    me = next(row for row in rows if row.policy == name)
    return [
        row.policy
        for row in rows
        if row.policy != name
        and row.cost <= me.cost
        and row.p95_s <= me.p95_s
        and (row.cost < me.cost or row.p95_s < me.p95_s)
    ]
