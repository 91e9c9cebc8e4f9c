"""runq.policy.baselines: other systems' defaults, as the simulator runs them."""

from __future__ import annotations

from typing import Any

import pytest

from runq.core.spec import ScalingSection
from runq.policy import baselines
from runq.policy.baselines import KpaState, RayState, kpa_step, ray_step
from runq.policy.scaling import ScalingSnapshot
from tests.policy.test_scaling import NOW, idle, make_snapshot, running

PLAIN = ScalingSection(max_workers=20, flashboot=False)


def at(now: float, **overrides: Any) -> ScalingSnapshot:
    return make_snapshot(now=now, **overrides)


# --- fixed keep-alive ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("snapshot", "start", "stop"),
    [
        pytest.param(make_snapshot(in_queue=3, oldest_queued_at=NOW), 3, (), id="one per job"),
        pytest.param(
            make_snapshot(workers=(idle("w1", NOW - 500),)), 0, (), id="idle 500 s is kept"
        ),
        pytest.param(
            make_snapshot(workers=(idle("w1", NOW - 700),)),
            0,
            ("w1",),
            id="idle 700 s > 600 s is stopped",
        ),
    ],
)
def test_fixed_keep_alive(snapshot: ScalingSnapshot, start: int, stop: tuple[str, ...]) -> None:
    decision = baselines.FixedKeepAlive()(snapshot, PLAIN, 600.0)

    assert (decision.start, decision.stop, decision.park) == (start, stop, ())


# --- Knative KPA --------------------------------------------------------------------------
def test_kpa_scales_from_zero_on_the_first_request() -> None:
    target, _ = kpa_step(at(NOW, in_queue=1, oldest_queued_at=NOW), PLAIN, KpaState())

    assert target.desired == 1


def test_kpa_panics_when_the_6s_window_wants_twice_the_ready_pods() -> None:
    # 3 queued + 1 running = 4 >= 2 x 1 ready pod: panic, desired ceil(4 / 1) = 4.
    snapshot = at(NOW, in_queue=3, in_progress=1, oldest_queued_at=NOW, workers=(running("w1"),))

    target, state = kpa_step(snapshot, PLAIN, KpaState())

    assert (target.desired, state.panic_until) == (4, NOW + 60)


def test_kpa_does_not_scale_down_while_panicking() -> None:
    state = KpaState(panic_until=NOW + 30, desired=4)
    quiet = at(NOW, workers=tuple(idle(f"w{n}", NOW - 1) for n in range(4)))

    target, _ = kpa_step(quiet, PLAIN, state)

    assert target.desired == 4


def test_kpa_scales_down_by_at_most_half_per_decision() -> None:
    # 60 s of zero concurrency, 4 ready idle pods: floor(4 / 2) = 2 stay.
    samples = tuple((NOW - 59 + n, 0) for n in range(59))
    quiet = at(NOW, workers=tuple(idle(f"w{n}", NOW - 30) for n in range(4)))

    target, _ = kpa_step(quiet, PLAIN, KpaState(samples=samples))

    assert target.desired == 2


@pytest.mark.parametrize(
    ("zero_for", "desired"),
    [
        pytest.param(10.0, 1, id="inside the 30 s scale-to-zero grace the last pod stays"),
        pytest.param(31.0, 0, id="after the grace it goes"),
    ],
)
def test_kpa_scale_to_zero_grace(zero_for: float, desired: int) -> None:
    quiet = at(NOW, workers=(idle("w1", NOW - 100),))

    target, _ = kpa_step(quiet, PLAIN, KpaState(zero_since=NOW - zero_for))

    assert target.desired == desired


# --- Ray Serve ----------------------------------------------------------------------------
def run_ray(timeline: list[tuple[float, int]], state: RayState) -> list[int]:
    """Targets after each (now, ongoing requests) step, ongoing requests all queued."""
    targets = []
    for now, ongoing in timeline:
        target, state = ray_step(
            at(now, in_queue=ongoing, oldest_queued_at=now if ongoing else None), PLAIN, state
        )
        targets.append(target.desired)
    return targets


def test_ray_scales_from_zero_at_once() -> None:
    assert run_ray([(0.0, 3)], RayState()) == [1]


def test_ray_waits_30s_before_scaling_up() -> None:
    # 10 ongoing / 2 per replica = 5 wanted from t=0 on; applied once it has lasted 30 s.
    steps = [(float(t), 10) for t in range(0, 41, 10)]

    assert run_ray(steps, RayState(target=1)) == [1, 1, 1, 5, 5]


def test_ray_waits_600s_before_scaling_down() -> None:
    steps = [(float(t), 0) for t in (0, 300, 599, 600)]

    assert run_ray(steps, RayState(target=5)) == [5, 5, 5, 0]


# --- ATC'20 hybrid histogram --------------------------------------------------------------
def test_atc20_falls_back_to_a_4h_keep_alive_without_a_histogram() -> None:
    kept = make_snapshot(workers=(idle("w1", NOW - 3600),))

    assert baselines.hybrid_histogram(kept, PLAIN).stop == ()


def test_atc20_unloads_at_once_when_the_prewarm_window_is_longer_than_a_cold_start() -> None:
    # Gaps of 100 s: pre-warm 90 s > 10 s cold start: unload now, pre-warm at 90 - 10 = 80 s.
    arrivals = tuple(NOW - 1200 + 100.0 * n for n in range(12))  # last at NOW - 100
    after_job = make_snapshot(
        now=NOW - 95, recent_arrivals=arrivals, workers=(idle("w1", NOW - 99),)
    )
    later = make_snapshot(recent_arrivals=arrivals, cold_start_s=10.0)

    assert baselines.hybrid_histogram(after_job, PLAIN).stop == ("w1",)
    assert baselines.hybrid_histogram(later, PLAIN).start == 1  # 100 s since: 80 <= 100 < 110
