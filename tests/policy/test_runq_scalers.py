"""runq's own scalers through `plan`: "slo" (a p95 target) and "histogram" (idle gaps)."""

from __future__ import annotations

from typing import Any

import pytest

from runq.policy.scaling import ScalingSnapshot, desired_workers, plan
from tests.policy.test_scaling import (
    NOW,
    idle,
    make_scaling,
    make_snapshot,
    parked,
    running,
    starting,
)

SLO = {"scaler": "slo", "p95_delay_target_s": 2.0, "max_workers": 20}
HIST = {"scaler": "histogram", "max_workers": 20}
# 40 arrivals in the last 10 s (4/s) of 1 s jobs: 6 workers keep P(delay > 2 s) under 5 %.
BURST = tuple(NOW - 10 + 0.25 * n for n in range(1, 41))
ONE_S = (1.0,) * 10
# A job every 0.1 s for 2 s, over a minute ago: pre-warm window 0.09 s, no rate now.
DENSE = tuple(NOW - 100 + 0.1 * n for n in range(20))


def snap(**overrides: Any) -> ScalingSnapshot:
    return make_snapshot(**{"recent_execution_s": ONE_S, "cold_start_s": 10.0, **overrides})


@pytest.mark.parametrize(
    ("scaling", "snapshot", "desired", "start", "revive", "park", "stop"),
    [
        pytest.param(
            SLO,
            snap(in_queue=1, oldest_queued_at=NOW),
            1,
            1,
            (),
            (),
            (),
            id="slo: a job on a cold endpoint starts one worker",
        ),
        pytest.param(
            SLO,
            snap(recent_arrivals=BURST, in_queue=2, oldest_queued_at=NOW - 0.5),
            6,
            6,
            (),
            (),
            (),
            id="slo: a 4/s burst of 1 s jobs under a 2 s target starts 6 at once",
        ),
        pytest.param(
            SLO,
            snap(
                recent_arrivals=BURST,
                workers=tuple(parked(f"p{n}", NOW - 60) for n in range(6)),
            ),
            0,
            0,
            (),
            (),
            (),
            id="slo: six parked workers are the pool for that burst: no cold start",
        ),
        pytest.param(
            SLO,
            snap(
                recent_arrivals=BURST,
                in_queue=2,
                oldest_queued_at=NOW - 0.5,
                workers=(running("w1"), parked("p1", NOW - 60)),
            ),
            6,
            4,
            ("p1",),
            (),
            (),
            id="slo: a pool short of 6 revives the parked one and starts the rest",
        ),
        pytest.param(
            {**SLO, "flashboot": False},
            snap(recent_arrivals=BURST, workers=(idle("w1", NOW - 30),)),
            6,
            5,
            (),
            (),
            (),
            id="slo without flashboot keeps the steady count live",
        ),
        pytest.param(
            {**SLO, "max_workers": 4},
            snap(recent_arrivals=BURST),
            4,
            4,
            (),
            (),
            (),
            id="slo is capped at max_workers",
        ),
        # The pre-warm window of DENSE is 0.09 s: an idle worker parks long before 5 s.
        pytest.param(
            SLO,
            snap(recent_arrivals=DENSE, workers=(idle("w1", NOW - 1),)),
            0,
            0,
            (),
            ("w1",),
            (),
            id="slo: an idle worker parks once past the pre-warm window",
        ),
        pytest.param(
            HIST,
            snap(recent_arrivals=DENSE, workers=(idle("w1", NOW - 1),)),
            0,
            0,
            (),
            ("w1",),
            (),
            id="histogram: the same worker parks, where queue_delay keeps it 5 s",
        ),
        pytest.param(
            {},
            snap(recent_arrivals=DENSE, workers=(idle("w1", NOW - 1),)),
            1,
            0,
            (),
            (),
            (),
            id="queue_delay keeps it: its idle timeout is 5 s",
        ),
        # Gaps of 1000 s: keep-alive window 1100 s, so a worker parked 700 s ago stays.
        pytest.param(
            HIST,
            snap(
                recent_arrivals=tuple(NOW - 11000 + 1000.0 * n for n in range(11)),
                workers=(parked("p1", NOW - 700),),
            ),
            0,
            0,
            (),
            (),
            (),
            id="histogram: parked through the keep-alive window (1100 s > 600 s retention)",
        ),
        pytest.param(
            {},
            snap(
                recent_arrivals=tuple(NOW - 11000 + 1000.0 * n for n in range(11)),
                workers=(parked("p1", NOW - 700),),
            ),
            0,
            0,
            (),
            (),
            ("p1",),
            id="queue_delay stops it at the 600 s retention",
        ),
        pytest.param(
            HIST,
            snap(in_queue=1, in_progress=1, oldest_queued_at=NOW - 5, workers=(running("w1"),)),
            2,
            1,
            (),
            (),
            (),
            id="histogram grows like queue_delay: 5 s > 4 s adds one",
        ),
        pytest.param(
            SLO,
            snap(workers=(starting("w1"),)),
            1,
            0,
            (),
            (),
            (),
            id="slo keeps a worker that is starting",
        ),
    ],
)
def test_plan(
    scaling: dict[str, Any],
    snapshot: ScalingSnapshot,
    desired: int,
    start: int,
    revive: tuple[str, ...],
    park: tuple[str, ...],
    stop: tuple[str, ...],
) -> None:
    decision = plan(snapshot, make_scaling(**scaling))

    assert (decision.desired, decision.start, decision.revive, decision.park, decision.stop) == (
        desired,
        start,
        revive,
        park,
        stop,
    )


def test_the_slo_reason_names_the_target_and_the_estimates() -> None:
    snapshot = snap(recent_arrivals=BURST, in_queue=2, oldest_queued_at=NOW - 0.5)

    _, reason = desired_workers(snapshot, make_scaling(**SLO))

    assert reason == (
        "p95 target 2s: 4 jobs/s x 1s needs 6, queue 2 + 0 running needs 2: 0 -> 6 workers"
    )


def test_an_unknown_scaler_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="queue_delay, request_count, slo, histogram"):
        plan(snap(), make_scaling(scaler="fastest"))
