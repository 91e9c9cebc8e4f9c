"""runq.policy.scaling: how many workers an endpoint wants; which to start, revive, park, stop."""

from __future__ import annotations

import doctest
import math
from typing import Any

import pytest

from runq.core.spec import ScalingSection
from runq.core.worker import WorkerState
from runq.policy import recommend_active_workers
from runq.policy import scaling as scaling_module
from runq.policy.scaling import (
    ScalingPlan,
    ScalingSnapshot,
    WorkerView,
    desired_workers,
    plan,
)

NOW = 100.0


def make_scaling(**overrides: Any) -> ScalingSection:
    """The spec defaults, spelt out so that a row's arithmetic can be checked against them."""
    fields: dict[str, Any] = {
        "active_workers": 0,
        "max_workers": 3,
        "idle_timeout_s": 5.0,
        "scaler": "queue_delay",
        "queue_delay_s": 4.0,
        "requests_per_worker": 4,
        "flashboot": True,
    }
    return ScalingSection(**{**fields, **overrides})


def make_snapshot(**overrides: Any) -> ScalingSnapshot:
    """No jobs and no workers at NOW, unless a row says otherwise."""
    fields: dict[str, Any] = {
        "now": NOW,
        "in_queue": 0,
        "in_progress": 0,
        "oldest_queued_at": None,
        "workers": (),
    }
    return ScalingSnapshot(**{**fields, **overrides})


def idle(worker_id: str, since: float, *, active: bool = False) -> WorkerView:
    return WorkerView(worker_id, WorkerState.IDLE, since, active)


def running(worker_id: str) -> WorkerView:
    return WorkerView(worker_id, WorkerState.RUNNING, 0.0)


def starting(worker_id: str) -> WorkerView:
    return WorkerView(worker_id, WorkerState.INITIALIZING, 0.0)


def throttled(worker_id: str) -> WorkerView:
    return WorkerView(worker_id, WorkerState.THROTTLED, 0.0)


def parked(worker_id: str, since: float) -> WorkerView:
    return WorkerView(worker_id, WorkerState.PARKED, since)


def unhealthy(worker_id: str) -> WorkerView:
    return WorkerView(worker_id, WorkerState.UNHEALTHY, 0.0)


RC = {"scaler": "request_count"}

DESIRED = [
    # (scaling overrides, snapshot overrides, desired)
    # --- request_count -------------------------------------------------------------------
    # ceil((5 + 1) / 4) = ceil(1.5) = 2.
    pytest.param(RC, {"in_queue": 5, "in_progress": 1}, 2, id="request count rounds up"),
    # 8 / 4 = 2 exactly: no extra worker.
    pytest.param(RC, {"in_queue": 8}, 2, id="request count on a whole multiple adds none"),
    # ceil(1 / 4) = 1 with no worker at all: no delay to wait out.
    pytest.param(RC, {"in_queue": 1, "oldest_queued_at": NOW}, 1, id="request count from zero"),
    # ceil(0 / 4) = 0.
    pytest.param(RC, {}, 0, id="request count with no jobs wants none"),
    # ceil(20 / 4) = 5, min(5, max 3) = 3.
    pytest.param(RC, {"in_queue": 20}, 3, id="request count is capped at max workers"),
    # ceil(0 / 4) = 0, max(0, active 1) = 1.
    pytest.param({**RC, "active_workers": 1}, {}, 1, id="request count keeps active workers"),
    # --- queue_delay: scale from zero ----------------------------------------------------
    # 1 job, 0 live: 1 at once although 100 - 99.5 = 0.5s < 4s.
    pytest.param(
        {}, {"in_queue": 1, "oldest_queued_at": 99.5}, 1, id="queue delay from zero does not wait"
    ),
    # 5 jobs waited 100 - 50 = 50s, 0 live: still one per decision.
    pytest.param(
        {}, {"in_queue": 5, "oldest_queued_at": 50.0}, 1, id="queue delay from zero adds one"
    ),
    # Unhealthy workers are not live: 0 live, so 1.
    pytest.param(
        {},
        {"in_queue": 1, "oldest_queued_at": NOW, "workers": (unhealthy("u1"),)},
        1,
        id="an unhealthy worker does not count as live",
    ),
    # Parked workers are not live: 0 live, so 1 (the plan revives it).
    pytest.param(
        {},
        {"in_queue": 1, "oldest_queued_at": NOW, "workers": (parked("p1", 50.0),)},
        1,
        id="a parked worker does not count as live",
    ),
    # --- queue_delay: under and over the threshold ---------------------------------------
    # 100 - 97 = 3s <= 4s: keep the 2 running.
    pytest.param(
        {},
        {
            "in_queue": 1,
            "in_progress": 2,
            "oldest_queued_at": 97.0,
            "workers": (running("w1"), running("w2")),
        },
        2,
        id="under the queue delay keeps the running workers",
    ),
    # 100 - 96 = 4s, not > 4s: exactly at the threshold does not grow.
    pytest.param(
        {},
        {
            "in_queue": 1,
            "in_progress": 2,
            "oldest_queued_at": 96.0,
            "workers": (running("w1"), running("w2")),
        },
        2,
        id="exactly at the queue delay does not grow",
    ),
    # 100 - 94.8 = 5.2s > 4s: 2 live + 1 = 3, and 3 <= 3 jobs.
    pytest.param(
        {},
        {
            "in_queue": 1,
            "in_progress": 2,
            "oldest_queued_at": 94.8,
            "workers": (running("w1"), running("w2")),
        },
        3,
        id="over the queue delay adds one worker",
    ),
    # 100 - 90 = 10s > 4s: 2 live + 1 = 3, but only 1 + 1 = 2 jobs, so 2.
    pytest.param(
        {},
        {
            "in_queue": 1,
            "in_progress": 1,
            "oldest_queued_at": 90.0,
            "workers": (running("w1"), starting("w2")),
        },
        2,
        id="over the queue delay never wants more workers than jobs",
    ),
    # 100 - 90 = 10s > 4s: 3 live + 1 = 4 <= 5 jobs, min(4, max 3) = 3.
    pytest.param(
        {},
        {
            "in_queue": 2,
            "in_progress": 3,
            "oldest_queued_at": 90.0,
            "workers": (running("w1"), running("w2"), running("w3")),
        },
        3,
        id="over the queue delay is capped at max workers",
    ),
    # 100 - 99 = 1s <= 4s: starting 1 + throttled 1 = 2 are already asked for.
    pytest.param(
        {},
        {"in_queue": 2, "oldest_queued_at": 99.0, "workers": (starting("w1"), throttled("w2"))},
        2,
        id="starting and throttled workers are kept",
    ),
    # --- queue_delay: idle workers -------------------------------------------------------
    # No jobs; idle 100 - 97 = 3s < 5s for both: keep 2.
    pytest.param(
        {},
        {"workers": (idle("w1", 97.0), idle("w2", 97.0))},
        2,
        id="no shrink within the idle timeout",
    ),
    # No jobs; idle 100 - 90 = 10s >= 5s for both: 0.
    pytest.param(
        {},
        {"workers": (idle("w1", 90.0), idle("w2", 90.0))},
        0,
        id="no jobs and every worker idle past its timeout wants none",
    ),
    # No jobs; w1 idle 10s >= 5s, w2 idle 2s < 5s: keep 1.
    pytest.param(
        {},
        {"workers": (idle("w1", 90.0), idle("w2", 98.0))},
        1,
        id="only the idle workers within their timeout are kept",
    ),
    # Idle 100 - 80 = 20s >= 5s, but 1 job queued 0.1s: min(1 expired, 1 queued) = 1 kept.
    pytest.param(
        {},
        {"in_queue": 1, "oldest_queued_at": 99.9, "workers": (idle("w1", 80.0),)},
        1,
        id="an expired idle worker is kept while a job waits for it",
    ),
    # No jobs, idle 10s: 0, max(0, active 1) = 1.
    pytest.param(
        {"active_workers": 1},
        {"workers": (idle("w1", 90.0, active=True),)},
        1,
        id="queue delay keeps active workers",
    ),
]


@pytest.mark.parametrize(("scaling", "snapshot", "desired"), DESIRED)
def test_desired_workers(scaling: dict[str, Any], snapshot: dict[str, Any], desired: int) -> None:
    assert desired_workers(make_snapshot(**snapshot), make_scaling(**scaling))[0] == desired


REASONS = [
    pytest.param(
        {},
        {
            "in_queue": 1,
            "in_progress": 2,
            "oldest_queued_at": 94.8,
            "workers": (running("w1"), running("w2")),
        },
        "queue delay 5.2s > 4s: 2 -> 3 workers",
        id="over the delay names the delay and the threshold",
    ),
    pytest.param(
        {},
        {
            "in_queue": 1,
            "in_progress": 2,
            "oldest_queued_at": 99.0,
            "workers": (running("w1"), running("w2")),
        },
        "queue delay 1.0s <= 4s: 2 -> 2 workers",
        id="under the delay says so",
    ),
    pytest.param(
        {},
        {
            "in_queue": 1,
            "in_progress": 1,
            "oldest_queued_at": 90.0,
            "workers": (running("w1"), starting("w2")),
        },
        "queue delay 10.0s > 4s but already 2 workers for 2 jobs: 2 -> 2 workers",
        id="over the delay with a worker per job says why it does not grow",
    ),
    pytest.param(
        {},
        {"in_queue": 3, "oldest_queued_at": 99.0},
        "3 jobs and no live worker: 0 -> 1 workers",
        id="scale from zero names the jobs",
    ),
    pytest.param(
        {},
        {"workers": (idle("w1", 90.0), idle("w2", 98.0))},
        "no jobs, 1 idle within the 5s idle timeout: 2 -> 1 workers",
        id="no jobs names the idle workers kept",
    ),
    pytest.param(
        RC,
        {"in_queue": 20},
        "20 jobs at 4 per worker, capped at max_workers 3: 0 -> 3 workers",
        id="a cap names max workers",
    ),
    pytest.param(
        {**RC, "active_workers": 1},
        {"workers": (idle("w1", 0.0, active=True),)},
        "0 jobs at 4 per worker, raised to active_workers 1: 1 -> 1 workers",
        id="a floor names active workers",
    ),
]


@pytest.mark.parametrize(("scaling", "snapshot", "reason"), REASONS)
def test_desired_workers_reason(
    scaling: dict[str, Any], snapshot: dict[str, Any], reason: str
) -> None:
    assert desired_workers(make_snapshot(**snapshot), make_scaling(**scaling))[1] == reason


BAD_SCALING = [
    pytest.param({"scaler": "cpu"}, "unknown scaler 'cpu'", id="an unknown scaler is an error"),
    pytest.param(
        {**RC, "requests_per_worker": 0},
        "requests_per_worker must be at least 1",
        id="zero requests per worker is an error",
    ),
]


@pytest.mark.parametrize(("scaling", "message"), BAD_SCALING)
def test_desired_workers_rejects_bad_scaling(scaling: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        desired_workers(make_snapshot(in_queue=1), make_scaling(**scaling))


def actions(
    desired: int = 0,
    start: int = 0,
    revive: tuple[str, ...] = (),
    park: tuple[str, ...] = (),
    stop: tuple[str, ...] = (),
) -> tuple[int, int, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return desired, start, revive, park, stop


def actions_of(
    decision: ScalingPlan,
) -> tuple[int, int, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return decision.desired, decision.start, decision.revive, decision.park, decision.stop


OFF = {"flashboot": False}

PLANS = [
    # (scaling overrides, snapshot overrides, actions); idle timeout 5s, retention 600s.
    # --- up ------------------------------------------------------------------------------
    # 0 live, 1 job: desired 1, nothing parked: start 1.
    pytest.param(
        {}, {"in_queue": 1, "oldest_queued_at": NOW}, actions(1, start=1), id="a cold start"
    ),
    # 0 live, 1 job: desired 1; p2 parked at 80 is more recent than p1 at 50.
    pytest.param(
        {},
        {"in_queue": 1, "oldest_queued_at": NOW, "workers": (parked("p1", 50), parked("p2", 80))},
        actions(1, revive=("p2",)),
        id="a parked worker is revived instead of a cold start, most recent first",
    ),
    # ceil(12 / 4) = 3, 0 live, 1 parked: revive p1, start 3 - 1 = 2.
    pytest.param(
        RC,
        {"in_queue": 12, "workers": (parked("p1", 50),)},
        actions(3, start=2, revive=("p1",)),
        id="parked workers are revived before new ones start",
    ),
    # ceil(8 / 4) = 2, 0 live: the 2 most recent of 60, 40, 10 are p2 then p3.
    pytest.param(
        RC,
        {"in_queue": 8, "workers": (parked("p1", 10), parked("p2", 60), parked("p3", 40))},
        actions(2, revive=("p2", "p3")),
        id="revival takes the most recently parked first",
    ),
    # ceil(40 / 4) = 10, min(10, 3) = 3; 1 running: start 3 - 1 = 2.
    pytest.param(
        RC,
        {"in_queue": 39, "in_progress": 1, "workers": (running("w1"),)},
        actions(3, start=2),
        id="starts stop at max workers",
    ),
    # No jobs, max(0, active 2) = 2, nothing live: start 2.
    pytest.param({"active_workers": 2}, {}, actions(2, start=2), id="active workers are started"),
    # 10s > 4s but 1 throttled worker for 1 job: min(1 + 1, 1) = 1 = live, nothing to start.
    pytest.param(
        {},
        {"in_queue": 1, "oldest_queued_at": 90.0, "workers": (throttled("w1"),)},
        actions(1),
        id="a throttled worker is not asked for twice",
    ),
    # --- down ----------------------------------------------------------------------------
    # ceil(0 / 4) = 0 < 2 live, but both idle 100 - 97 = 3s < 5s: nothing retires yet.
    pytest.param(
        RC,
        {"workers": (idle("w1", 97), idle("w2", 97))},
        actions(0),
        id="no shrink within the idle timeout",
    ),
    # Idle 100 - 95 = 5s >= 5s: exactly at the timeout retires.
    pytest.param(
        {}, {"workers": (idle("w1", 95),)}, actions(0, park=("w1",)), id="at the idle timeout"
    ),
    # Desired 1 (w3 idle 2s); live 3 -> 1 retires 2: w2 idle 20s, then w1 idle 10s.
    pytest.param(
        {},
        {"workers": (idle("w1", 90), idle("w2", 80), idle("w3", 98))},
        actions(1, park=("w2", "w1")),
        id="shrinking parks the longest idle first",
    ),
    # Same with flashboot off: stopped instead of parked.
    pytest.param(
        OFF,
        {"workers": (idle("w1", 90), idle("w2", 80), idle("w3", 98))},
        actions(1, stop=("w2", "w1")),
        id="shrinking without flashboot stops",
    ),
    # max(0, active 1) = 1; live 2 -> 1: a0 idle 100s is longest but active, so w1 (50s).
    pytest.param(
        {"active_workers": 1},
        {"workers": (idle("a0", 0, active=True), idle("w1", 50))},
        actions(1, park=("w1",)),
        id="shrinking never retires an active worker",
    ),
    # Desired 0 < 1 live, but the only idle worker is active: it stays.
    pytest.param(
        {},
        {"workers": (idle("a0", 0, active=True),)},
        actions(0),
        id="an active worker stays even when desired is below it",
    ),
    # Desired 1 (1 in progress, 0.0s <= 4s); live 2 -> 1: w2 idle 10s retires, w1 runs on.
    pytest.param(
        {},
        {"in_progress": 1, "workers": (running("w1"), idle("w2", 90))},
        actions(1, park=("w2",)),
        id="a running worker is never retired",
    ),
    # --- stop ----------------------------------------------------------------------------
    # 1 in progress keeps w1; u1 is not live and always stopped.
    pytest.param(
        {},
        {"in_progress": 1, "workers": (running("w1"), unhealthy("u1"))},
        actions(1, stop=("u1",)),
        id="an unhealthy worker is stopped",
    ),
    # now 1000: p1 parked 1000 - 300 = 700s >= 600s stops; p2 1000 - 500 = 500s < 600s stays.
    pytest.param(
        {},
        {"now": 1000.0, "workers": (parked("p1", 300), parked("p2", 500))},
        actions(0, stop=("p1",)),
        id="a worker parked past the retention window is stopped",
    ),
    # now 1000: 1000 - 400 = 600s >= 600s.
    pytest.param(
        {},
        {"now": 1000.0, "workers": (parked("p1", 400),)},
        actions(0, stop=("p1",)),
        id="exactly at the retention window stops",
    ),
    # now 1000, 1 job, 0 live: p1 parked 900s is the only one, revived rather than stopped.
    pytest.param(
        {},
        {"now": 1000.0, "in_queue": 1, "oldest_queued_at": 1000.0, "workers": (parked("p1", 100),)},
        actions(1, revive=("p1",)),
        id="a parked worker past retention that is revived is not stopped",
    ),
    # now 1000, 1 job: p2 (900) revived; p1 parked 900s >= 600s stopped.
    pytest.param(
        {},
        {
            "now": 1000.0,
            "in_queue": 1,
            "oldest_queued_at": 1000.0,
            "workers": (parked("p1", 100), parked("p2", 900)),
        },
        actions(1, revive=("p2",), stop=("p1",)),
        id="the stale parked worker is stopped while a fresh one is revived",
    ),
    # now 1000, flashboot off, no jobs: u1 unhealthy, w1 idle 100s retired, p1 parked 900s.
    pytest.param(
        OFF,
        {"now": 1000.0, "workers": (idle("w1", 900), parked("p1", 100), unhealthy("u1"))},
        actions(0, stop=("u1", "w1", "p1")),
        id="stop lists unhealthy then retired then expired parked",
    ),
]


@pytest.mark.parametrize(("scaling", "snapshot", "expected"), PLANS)
def test_plan(
    scaling: dict[str, Any],
    snapshot: dict[str, Any],
    expected: tuple[int, int, tuple[str, ...], tuple[str, ...], tuple[str, ...]],
) -> None:
    assert actions_of(plan(make_snapshot(**snapshot), make_scaling(**scaling), 600.0)) == expected


def test_plan_carries_the_reason_of_the_desired_count() -> None:
    # 100 - 94.8 = 5.2s > 4s with 2 running and 3 jobs: 2 -> 3.
    snapshot = make_snapshot(
        in_queue=1, in_progress=2, oldest_queued_at=94.8, workers=(running("w1"), running("w2"))
    )
    assert plan(snapshot, make_scaling()).reason == "queue delay 5.2s > 4s: 2 -> 3 workers"


def test_plan_keeps_parked_workers_for_ten_minutes_by_default() -> None:
    # now 1000: p1 parked 1000 - 401 = 599s < 600s, p2 parked 1000 - 400 = 600s.
    snapshot = make_snapshot(now=1000.0, workers=(parked("p1", 401), parked("p2", 400)))
    assert plan(snapshot, make_scaling()).stop == ("p2",)


RECOMMENDED = [
    # (requests per minute, seconds per request, active workers)
    # 6 x 30 / 60 = 3: the rule of thumb's own example.
    pytest.param(6, 30, 3, id="six a minute of thirty seconds keep three busy"),
    # 7 x 30 / 60 = 3.5, rounded up.
    pytest.param(7, 30, 4, id="a fraction of a worker rounds up"),
    # 1 x 1 / 60 = 0.017, rounded up.
    pytest.param(1, 1, 1, id="any traffic wants one"),
    # 0 x 30 / 60 = 0.
    pytest.param(0, 30, 0, id="no traffic wants none"),
    # 6 x 0 / 60 = 0.
    pytest.param(6, 0, 0, id="instant requests want none"),
    # 1.1 x 1800 / 60 = 33, which floats compute as 33.00000000000001.
    pytest.param(1.1, 1800, 33, id="float noise does not add a worker"),
]


@pytest.mark.parametrize(("per_minute", "seconds", "active"), RECOMMENDED)
def test_recommend_active_workers(per_minute: float, seconds: float, active: int) -> None:
    assert recommend_active_workers(per_minute, seconds) == active


BAD_LOADS = [
    pytest.param(-1, 30, "requests_per_minute", id="negative traffic is an error"),
    pytest.param(6, -0.5, "seconds_per_request", id="a negative duration is an error"),
    pytest.param(math.nan, 30, "requests_per_minute", id="nan is an error"),
    pytest.param(6, math.inf, "seconds_per_request", id="infinity is an error"),
]


@pytest.mark.parametrize(("per_minute", "seconds", "named"), BAD_LOADS)
def test_recommend_active_workers_rejects_bad_input(
    per_minute: float, seconds: float, named: str
) -> None:
    with pytest.raises(ValueError, match=f"{named} must be a finite number >= 0"):
        recommend_active_workers(per_minute, seconds)


def test_docstring_examples() -> None:
    results = doctest.testmod(scaling_module)
    assert results.attempted > 0
    assert results.failed == 0
