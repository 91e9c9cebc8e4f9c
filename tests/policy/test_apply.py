"""One plan, applied once: the re-check both the live scheduler and the simulator run before
acting, the simulator's moves against the live state machine, one percentile for both."""

from __future__ import annotations

import pytest

from runq.bench.sim import SimConfig, _Sim
from runq.core.spec import ScalingSection
from runq.core.stats import nearest_rank
from runq.core.worker import Worker, WorkerState
from runq.fleet import lifecycle
from runq.policy.scaling import ScalingPlan, WorkerView, still_applicable

IDLE, RUNNING, PARKED, UNHEALTHY = (
    WorkerState.IDLE,
    WorkerState.RUNNING,
    WorkerState.PARKED,
    WorkerState.UNHEALTHY,
)


def _plan(
    revive: tuple[str, ...] = (), park: tuple[str, ...] = (), stop: tuple[str, ...] = ()
) -> ScalingPlan:
    return ScalingPlan(desired=1, start=0, revive=revive, park=park, stop=stop, reason="r")


@pytest.mark.parametrize(
    ("seen", "now", "decision", "kept"),
    [
        pytest.param(
            {"w1": IDLE},
            {"w1": IDLE},
            _plan(park=("w1",)),
            _plan(park=("w1",)),
            id="unchanged since the snapshot: the action stands",
        ),
        pytest.param(
            {"w1": IDLE},
            {"w1": RUNNING},
            _plan(park=("w1",)),
            _plan(),
            id="it took a job meanwhile: not parked",
        ),
        pytest.param(
            {"w1": IDLE},
            {},
            _plan(stop=("w1",)),
            _plan(),
            id="it exited: nothing to stop",
        ),
        pytest.param(
            {"w1": PARKED},
            {"w1": IDLE},
            _plan(revive=("w1",)),
            _plan(),
            id="revived by a submit meanwhile: not revived twice",
        ),
        pytest.param(
            {"w1": PARKED, "w2": UNHEALTHY},
            {"w1": PARKED, "w2": UNHEALTHY},
            _plan(revive=("w1",), stop=("w2",)),
            _plan(revive=("w1",), stop=("w2",)),
            id="a revive and a stop of an unhealthy worker",
        ),
        pytest.param(
            {"w1": RUNNING},
            {"w1": RUNNING},
            _plan(park=("w1",)),
            _plan(),
            id="a move the state machine forbids is never kept",
        ),
    ],
)
def test_still_applicable(
    seen: dict[str, WorkerState],
    now: dict[str, WorkerState],
    decision: ScalingPlan,
    kept: ScalingPlan,
) -> None:
    views = tuple(WorkerView(w, state, 0.0) for w, state in seen.items())
    assert still_applicable(decision, views, now) == kept


def test_the_simulator_moves_workers_as_the_live_state_machine_does() -> None:
    # Bursts 60 s apart with a 5 s idle timeout and FlashBoot: workers park and are revived.
    arrivals = [burst * 60.0 + i * 0.05 for burst in range(5) for i in range(20)]
    config = SimConfig(
        ScalingSection(max_workers=4, idle_timeout_s=5, flashboot=True),
        cold_start_s=3.0,
        revival_s=0.01,
    )
    sim = _Sim(config)
    result = sim.run(arrivals, [0.5] * len(arrivals))
    assert result.revivals > 0 and len(result.jobs) == len(arrivals)
    for simulated in sim.workers.values():
        # The same sequence of moves, through the live lifecycle: it raises on a forbidden one.
        live = Worker(id=simulated.id, endpoint="e", token="t")
        first, *rest = simulated.transitions
        lifecycle.begin(live, first.state, first.at, first.reason)
        for step in rest:
            lifecycle.move(live, step.state, step.at, step.reason)
        assert [t.state for t in live.transitions] == [t.state for t in simulated.transitions]


def test_the_simulator_takes_p95_as_the_live_store_does() -> None:
    # 20 jobs with delays 1..20 s: p95 by nearest rank is the 19th value (0.95 * 20 = 19).
    arrivals = [0.0] * 20
    config = SimConfig(ScalingSection(max_workers=1), cold_start_s=1.0)
    result = _Sim(config).run(arrivals, [1.0] * 20)
    delays = sorted(job.delay_s for job in result.jobs)
    assert result.delay_percentile(0.95) == nearest_rank(delays, 95) == delays[18]
