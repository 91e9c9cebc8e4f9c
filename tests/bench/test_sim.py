"""The simulator: worked scenarios, arithmetic in the comments."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from runq.bench import sim
from runq.bench.sim import SimConfig, simulate
from runq.core.spec import ScalingSection
from runq.policy.cost import Rate


def make_config(**scaling: Any) -> SimConfig:
    fields: dict[str, Any] = {"idle_timeout_s": 5.0, "max_workers": 3, "flashboot": False}
    fields.update(scaling)
    return SimConfig(ScalingSection(**fields), cold_start_s=3.0, rate=Rate(0.001, 0.0005))


@pytest.mark.parametrize(
    ("arrivals", "execution", "scaling", "delays"),
    [
        pytest.param([0.0], [1.0], {}, [3.0], id="scale from zero waits one cold start (3 s)"),
        pytest.param(
            [10.0], [1.0], {"active_workers": 1}, [0.0], id="an active worker answers at once"
        ),
        pytest.param(
            [0.0, 0.0],
            [2.0, 2.0],
            {"max_workers": 1},
            [3.0, 5.0],
            id="one worker: the second job waits for the first (3 + 2 s)",
        ),
        pytest.param(
            [0.0, 0.0],
            [2.0, 2.0],
            {"scaler": "request_count", "requests_per_worker": 1},
            [3.0, 3.0],
            id="request count: two jobs start two workers together",
        ),
        pytest.param(
            [0.0, 5.0],
            [1.0, 1.0],
            {"idle_timeout_s": 10.0},
            [3.0, 0.0],
            id="inside the idle timeout the worker is still there (ready at 3, idle at 4)",
        ),
        pytest.param(
            [0.0, 20.0],
            [1.0, 1.0],
            {"idle_timeout_s": 2.0},
            [3.0, 3.0],
            id="after the idle timeout the next job waits a cold start again",
        ),
    ],
)
def test_delays(
    arrivals: list[float], execution: list[float], scaling: dict[str, Any], delays: list[float]
) -> None:
    result = simulate(arrivals, execution, make_config(**scaling))
    assert [job.delay_s for job in result.jobs] == pytest.approx(delays, abs=0.26)  # one tick


def test_flashboot_revives_a_parked_worker_in_milliseconds() -> None:
    config = make_config(idle_timeout_s=1.0, flashboot=True)
    result = simulate([0.0, 30.0], [1.0, 1.0], config)
    # Job 1: cold (3 s). Idle from 4 s, parked at ~5 s; job 2 at 30 s revives it.
    assert result.jobs[1].delay_s < 0.01
    assert (result.cold_starts, result.revivals) == (1, 1)


def test_cost_is_billed_per_second_from_start_to_stop() -> None:
    result = simulate([0.0], [1.0], make_config(idle_timeout_s=2.0))
    # Start 0 -> ready 3 -> job 3..4 -> idle 4..6 (+ up to one tick) -> stopped.
    worker = result.workers[0]
    assert worker.cold_start_s == pytest.approx(3.0)
    assert worker.running_s == pytest.approx(1.0)
    assert worker.idle_s == pytest.approx(2.0, abs=0.26)
    assert result.cost == pytest.approx(worker.billed_s * 0.001)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 arrivals but 1 execution"):
        simulate([0.0, 1.0], [1.0], make_config())


def test_docstring_example() -> None:
    assert doctest.testmod(sim).failed == 0
