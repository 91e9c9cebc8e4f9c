"""`runq advise`: search scaling configurations of one endpoint on a trace, by simulation.

Each candidate is a `ScalingSection`; the simulator (`runq.bench.sim`, which calls the live
scheduler's own `runq.policy.scaling.plan`) runs it over the trace and gives its cost and p95
delay. The answer is the Pareto set of (cost, p95 delay), the cheapest configuration whose p95
delay meets a target, and two references simulated the same way: the seeds' rules of thumb and
the endpoint's current configuration.

The grid: active workers around the Little's-law load, max workers up to 1.5 x the busiest
minute's load, a few idle timeouts, every scaler with its threshold values (`SCALER_KNOBS`,
data: add a row for a new scaler), FlashBoot on and off. Pruned where knobs cannot matter (with
active = max no flex worker ever starts, so scaler, idle timeout and FlashBoot are moot), then
run in a seeded shuffled order on several processes until a time budget runs out, so a cut-off
search still covers the whole grid evenly; a grid too big for the budget is screened first
on a shorter window (see `advise`). A long trace is cut to a window of `max_jobs`
arrivals around its busiest minute: the p95 there is the one that matters.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from runq.bench.dists import Dist
from runq.bench.sim import SimConfig, simulate
from runq.core import spec as spec_module
from runq.core.spec import ScalingSection
from runq.policy.cost import Rate
from runq.policy.scaling import recommend_active_workers

RULE_QUEUE_DELAY_S = 2.5  # the seeds' "queue delay 2-3 s": the middle of it
RULE_MAX_HEADROOM = 1.2  # the seeds' "max workers +20 %"
IDLE_TIMEOUTS_S = (1.0, 5.0, 15.0, 60.0)


@dataclass(frozen=True)
class ScalerKnob:
    """A scaler and the values of its threshold (a `ScalingSection` field) worth trying."""

    scaler: str
    field: str
    values: tuple[float, ...]


# A scaler named by the spec but missing here is still searched, at its default threshold.
SCALER_KNOBS: tuple[ScalerKnob, ...] = (
    ScalerKnob("queue_delay", "queue_delay_s", (1.0, 2.0, 4.0, 8.0)),
    ScalerKnob("request_count", "requests_per_worker", (1, 2, 4)),
    ScalerKnob("slo", "p95_delay_target_s", (1.0, 2.5, 5.0, 10.0)),
    ScalerKnob("histogram", "queue_delay_s", (2.0, 4.0)),
)


@dataclass(frozen=True)
class Workload:
    """What the endpoint is asked to do, and how long its workers take."""

    arrivals: tuple[float, ...]  # seconds, sorted
    execution: tuple[float, ...] | Dist  # per arrival, or drawn per job
    cold_start: float | Dist
    revival: float | Dist
    rate: Rate
    seed: int = 0
    tick_s: float = 0.25  # the scheduler's period (the live default)

    @property
    def span_s(self) -> float:
        return self.arrivals[-1] - self.arrivals[0] if len(self.arrivals) > 1 else 0.0

    @property
    def requests_per_minute(self) -> float:
        return 60 * len(self.arrivals) / self.span_s if self.span_s else 0.0

    @property
    def mean_execution_s(self) -> float:
        if isinstance(self.execution, tuple):
            return math.fsum(self.execution) / len(self.execution) if self.execution else 0.0
        return self.execution.mean

    def peak_per_minute(self) -> int:
        """Arrivals in the busiest 60 s window."""
        most, ends = 0, self.arrivals
        for i, at in enumerate(ends):
            most = max(most, bisect.bisect_right(ends, at + 60.0) - i)
        return most


@dataclass(frozen=True)
class Outcome:
    """One configuration, simulated."""

    scaling: ScalingSection
    cost: float  # USD over the simulated trace
    p95_delay_s: float
    mean_delay_s: float
    cold_starts: int
    label: str = ""  # "rule of thumb", "current" for the references


@dataclass(frozen=True)
class Advice:
    outcomes: tuple[Outcome, ...]  # every configuration simulated, references first
    pareto: tuple[Outcome, ...]  # by cost, cheapest first
    recommended: Outcome | None  # cheapest with p95 <= target; None: none meets it
    rule_of_thumb: Outcome
    current: Outcome
    target_p95_s: float
    grid_size: int  # configurations in the pruned grid (searched: len(outcomes) - 2)
    span_s: float  # of the simulated window
    jobs: int  # in the simulated window
    trace_jobs: int  # in the whole trace
    screened: int = 0  # configurations of a first pass on a shorter window (0: one pass)

    def per_hour(self, outcome: Outcome) -> float:
        return outcome.cost * 3600 / self.span_s if self.span_s else 0.0


def rule_of_thumb(
    requests_per_minute: float, seconds_per_request: float, base: ScalingSection
) -> ScalingSection:
    """The seeds' rules: active = requests/min x seconds/60 (rounded up), max = active + 20 %
    (rounded up, at least 1), queue delay scaler at 2.5 s; the rest as in `base`.

    30 requests a minute of 9 s: active = 30 x 9 / 60 = 4.5 -> 5, max = 5 x 1.2 = 6.

    >>> rule = rule_of_thumb(30, 9, ScalingSection())
    >>> rule.active_workers, rule.max_workers, rule.scaler, rule.queue_delay_s
    (5, 6, 'queue_delay', 2.5)
    """
    active = recommend_active_workers(requests_per_minute, seconds_per_request)
    # Rounded first so that float noise (6.000000000000001) does not add a whole worker.
    maximum = max(1, math.ceil(round(active * RULE_MAX_HEADROOM, 9)))
    return dataclasses.replace(
        base,
        active_workers=active,
        max_workers=maximum,
        scaler="queue_delay",
        queue_delay_s=RULE_QUEUE_DELAY_S,
    )


def pareto(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The outcomes no other one beats on both cost and p95 delay, cheapest first. Of equal
    points the first listed stays.

    >>> s = ScalingSection()
    >>> points = [Outcome(s, 1.0, 9.0, 0, 0), Outcome(s, 2.0, 3.0, 0, 0),
    ...           Outcome(s, 2.5, 4.0, 0, 0), Outcome(s, 3.0, 1.0, 0, 0)]
    >>> [(o.cost, o.p95_delay_s) for o in pareto(points)]  # (2.5, 4) loses to (2, 3)
    [(1.0, 9.0), (2.0, 3.0), (3.0, 1.0)]
    """
    order = sorted(
        range(len(outcomes)), key=lambda i: (outcomes[i].cost, outcomes[i].p95_delay_s, i)
    )
    front: list[Outcome] = []
    for i in order:
        if not front or outcomes[i].p95_delay_s < front[-1].p95_delay_s:
            front.append(outcomes[i])
    return front


def recommend(outcomes: Sequence[Outcome], target_p95_s: float) -> Outcome | None:
    """The cheapest outcome whose p95 delay is at most the target (the lower p95 on a tie)."""
    meeting = [o for o in outcomes if o.p95_delay_s <= target_p95_s]
    return min(meeting, key=lambda o: (o.cost, o.p95_delay_s), default=None)


def scaler_knobs() -> list[ScalerKnob]:
    """The knobs of every scaler the spec accepts now, in `SCALER_KNOBS` order."""
    known = {knob.scaler: knob for knob in SCALER_KNOBS}
    fields = {f.name for f in dataclasses.fields(ScalingSection)}
    knobs = [known.get(name, ScalerKnob(name, "", ())) for name in spec_module.SCALERS]
    return [k if k.field in fields else ScalerKnob(k.scaler, "", ()) for k in knobs]


def search_space(workload: Workload, current: ScalingSection) -> list[ScalingSection]:
    """The pruned grid around the workload's load (see the module doc), without duplicates."""
    seconds = workload.mean_execution_s
    base = recommend_active_workers(workload.requests_per_minute, seconds)
    peak = max(1, recommend_active_workers(workload.peak_per_minute(), seconds))
    actives = sorted({0, base // 2, base, base + 1})
    maxima = sorted(
        {max(1, base), math.ceil(base * RULE_MAX_HEADROOM), peak, math.ceil(peak * 1.5)}
        | {current.max_workers}
        | {a for a in actives if a > 0}
    )
    idles = sorted({*IDLE_TIMEOUTS_S, current.idle_timeout_s})
    seen: set[ScalingSection] = set()
    grid: list[ScalingSection] = []
    for active in actives:
        for maximum in (m for m in maxima if m >= max(1, active)):
            if active == maximum:  # no flex worker ever starts: the other knobs are moot
                candidates = [
                    dataclasses.replace(current, active_workers=active, max_workers=maximum)
                ]
            else:
                candidates = [
                    dataclasses.replace(
                        current,
                        active_workers=active,
                        max_workers=maximum,
                        idle_timeout_s=idle,
                        flashboot=flashboot,
                        **scaler,
                    )
                    for scaler in _scaler_settings()
                    for idle in idles
                    for flashboot in (False, True)
                ]
            for candidate in candidates:
                if candidate not in seen:
                    seen.add(candidate)
                    grid.append(candidate)
    return grid


def _scaler_settings() -> list[dict[str, Any]]:
    """`ScalingSection` fields for each scaler and threshold value."""
    settings: list[dict[str, Any]] = []
    for knob in scaler_knobs():
        if not knob.field or not knob.values:
            settings.append({"scaler": knob.scaler})
        settings += [{"scaler": knob.scaler, knob.field: value} for value in knob.values]
    return settings


def busiest_window(arrivals: Sequence[float], max_jobs: int) -> tuple[int, int]:
    """[start, end) of `max_jobs` consecutive arrivals centred on the busiest minute."""
    if len(arrivals) <= max_jobs:
        return 0, len(arrivals)
    best, busiest = 0, 0
    for i, at in enumerate(arrivals):
        count = bisect.bisect_right(arrivals, at + 60.0) - i
        if count > best:
            best, busiest = count, i
    start = min(max(0, busiest - max_jobs // 2), len(arrivals) - max_jobs)
    return start, start + max_jobs


def window(workload: Workload, max_jobs: int) -> Workload:
    start, end = busiest_window(workload.arrivals, max_jobs)
    if (start, end) == (0, len(workload.arrivals)):
        return workload
    first = workload.arrivals[start]
    execution = workload.execution
    if isinstance(execution, tuple):
        execution = execution[start:end]
    arrivals = tuple(at - first for at in workload.arrivals[start:end])
    return dataclasses.replace(workload, arrivals=arrivals, execution=execution)


def evaluate(workload: Workload, scaling: ScalingSection, label: str = "") -> Outcome:
    config = SimConfig(
        scaling,
        cold_start_s=workload.cold_start,
        revival_s=workload.revival,
        rate=workload.rate,
        seed=workload.seed,
        tick_s=workload.tick_s,
    )
    result = simulate(workload.arrivals, workload.execution, config)
    delays = [job.delay_s for job in result.jobs]
    return Outcome(
        scaling=scaling,
        cost=result.cost,
        p95_delay_s=result.delay_percentile(0.95),
        mean_delay_s=math.fsum(delays) / len(delays) if delays else 0.0,
        cold_starts=result.cold_starts,
        label=label,
    )


_shared: Workload | None = None  # the workload, set once in each pool process


def _init(workload: Workload) -> None:
    global _shared
    _shared = workload


def _evaluate_shared(scaling: ScalingSection) -> Outcome:
    assert _shared is not None
    return evaluate(_shared, scaling)


def advise(
    workload: Workload,
    current: ScalingSection,
    target_p95_s: float,
    budget_s: float = 30.0,
    processes: int = 1,
    max_jobs: int = 20000,
    screen_jobs: int = 500,
    clock: Callable[[], float] = time.monotonic,
    grid: Sequence[ScalingSection] | None = None,
) -> Advice:
    """Search (see the module doc). `budget_s` bounds the grid search; the two references are
    always simulated. `grid` replaces `search_space` (a narrower search).

    When the whole grid would not fit in the budget (judged by the time the two references
    took), the search takes two passes, because a simulation costs in proportion to the span
    (the scheduler ticks every 0.25 s): first the whole grid on the `screen_jobs` arrivals
    around the busiest minute with a 1 s tick, with half the budget; then the best layers
    of that pass (its Pareto set, then the set under it, ..., `REFINE` at least) on the
    whole window. Only the second pass's figures are reported.

    Raises:
        ValueError: an empty trace, or a target below 0.
    """
    if not workload.arrivals:
        raise ValueError("the trace has no arrivals")
    if not target_p95_s >= 0:
        raise ValueError(f"the target p95 delay must be >= 0 s, got {target_p95_s!r}")
    start = clock()
    trace_jobs = len(workload.arrivals)
    workload = window(workload, max_jobs)
    rule = rule_of_thumb(workload.requests_per_minute, workload.mean_execution_s, current)
    references = [evaluate(workload, rule, "rule of thumb"), evaluate(workload, current, "current")]
    per_config_s = (clock() - start) / 2
    grid = search_space(workload, current) if grid is None else grid
    order = list(grid)
    random.Random(workload.seed).shuffle(order)
    screened = 0
    if per_config_s * len(grid) / max(1, processes) > 0.6 * budget_s:
        coarse = dataclasses.replace(window(workload, screen_jobs), tick_s=SCREEN_TICK_S)
        first = _run_grid(coarse, order, start + 0.5 * budget_s, processes, clock)
        screened = len(first)
        order = [o.scaling for o in _best_layers(first, REFINE, target_p95_s)]
    found = _run_grid(workload, order, start + budget_s, processes, clock)
    outcomes = references + found
    return Advice(
        outcomes=tuple(outcomes),
        pareto=tuple(pareto(outcomes)),
        recommended=recommend(outcomes, target_p95_s),
        rule_of_thumb=references[0],
        current=references[1],
        target_p95_s=target_p95_s,
        grid_size=len(grid),
        span_s=workload.span_s,
        jobs=len(workload.arrivals),
        trace_jobs=trace_jobs,
        screened=screened,
    )


REFINE = 40  # configurations a screening pass hands to the full one, at least
SCREEN_TICK_S = 1.0  # the screening pass decides less often: 4 x fewer ticks to simulate


def _best_layers(outcomes: Sequence[Outcome], at_least: int, target_p95_s: float) -> list[Outcome]:
    """Pareto layers, best first, until `at_least` outcomes (whole layers). Inside a layer the
    ones likeliest to be recommended come first, for a budget that runs out: those meeting
    the target, cheapest first, then the others, lowest p95 first."""
    left, chosen = list(outcomes), list[Outcome]()
    while left and len(chosen) < at_least:
        layer = pareto(left)
        chosen += sorted(
            layer,
            key=lambda o: (0, o.cost) if o.p95_delay_s <= target_p95_s else (1, o.p95_delay_s),
        )
        taken = {id(o) for o in layer}
        left = [o for o in left if id(o) not in taken]
    return chosen


def _run_grid(
    workload: Workload,
    order: list[ScalingSection],
    deadline: float,
    processes: int,
    clock: Callable[[], float],
) -> list[Outcome]:
    if processes <= 1:
        found = []
        for scaling in order:
            if clock() >= deadline:
                break
            found.append(evaluate(workload, scaling))
        return found
    results: dict[int, Outcome] = {}
    pool = cf.ProcessPoolExecutor(processes, initializer=_init, initargs=(workload,))
    try:
        futures = {pool.submit(_evaluate_shared, s): i for i, s in enumerate(order)}
        try:
            for future in cf.as_completed(futures, timeout=max(0.0, deadline - clock())):
                results[futures[future]] = future.result()
        except TimeoutError:
            pass  # the budget is spent: keep what finished
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[i] for i in sorted(results)]
