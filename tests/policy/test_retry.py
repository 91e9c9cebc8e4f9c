"""runq.policy.retry: what happens to a lost job, when a running job must end, who is lost."""

from __future__ import annotations

import pytest

from runq.policy.retry import (
    LostJobAction,
    LostJobDecision,
    Overdue,
    decide_lost_job,
    overdue_reason,
    worker_is_lost,
)

LOST_JOBS = [
    # 0 < 3: retries left, requeue with the cause as it is.
    pytest.param(
        0, 3, LostJobDecision(LostJobAction.REQUEUE, "w1 died"), id="a first loss requeues"
    ),
    # 2 < 3: the last retry is still allowed.
    pytest.param(
        2, 3, LostJobDecision(LostJobAction.REQUEUE, "w1 died"), id="the last retry requeues"
    ),
    # 3 == 3: every retry used, give up.
    pytest.param(
        3,
        3,
        LostJobDecision(LostJobAction.FAIL, "w1 died; gave up after 3 retries"),
        id="a job out of retries fails",
    ),
    # 0 == 0: no retries allowed at all.
    pytest.param(
        0,
        0,
        LostJobDecision(LostJobAction.FAIL, "w1 died; gave up after 0 retries"),
        id="max_retries of zero fails at once",
    ),
    # 5 > 3: max_retries lowered by a redeploy after the job was requeued.
    pytest.param(
        5,
        3,
        LostJobDecision(LostJobAction.FAIL, "w1 died; gave up after 5 retries"),
        id="more retries than now allowed fails",
    ),
]


@pytest.mark.parametrize(("retries", "max_retries", "decision"), LOST_JOBS)
def test_decide_lost_job(retries: int, max_retries: int, decision: LostJobDecision) -> None:
    assert decide_lost_job(retries, max_retries, "w1 died") == decision


OVERDUE = [
    # (now, created_at, started_at, execution_timeout_s, ttl_s)
    # 104 < 100 + 5 = 105 and 104 < 0 + 600: nothing due.
    pytest.param(104, 0, 100, 5, 600, Overdue.NO, id="a job inside both limits runs on"),
    # 105 >= 100 + 5: the execution timeout is reached exactly.
    pytest.param(105, 0, 100, 5, 600, Overdue.EXECUTION_TIMEOUT, id="at the execution timeout"),
    # 110 >= 100 + 5: past the execution timeout.
    pytest.param(110, 0, 100, 5, 600, Overdue.EXECUTION_TIMEOUT, id="past the execution timeout"),
    # No execution timeout: 599 < 0 + 600.
    pytest.param(599, 0, 100, None, 600, Overdue.NO, id="no execution timeout, inside the ttl"),
    # 600 >= 0 + 600: the TTL counts from submission, not pickup.
    pytest.param(600, 0, 590, None, 600, Overdue.TTL, id="the ttl counts from submission"),
    # 700 >= 600 + 50 and 700 >= 0 + 600: both; the execution timeout is named first.
    pytest.param(700, 0, 600, 50, 600, Overdue.EXECUTION_TIMEOUT, id="both due names the timeout"),
    # Not started: no execution time yet; 50 < 0 + 600.
    pytest.param(50, 0, None, 5, 600, Overdue.NO, id="a job not started has no execution time"),
    # Not started: 600 >= 0 + 600.
    pytest.param(600, 0, None, 5, 600, Overdue.TTL, id="a job not started can reach its ttl"),
]


@pytest.mark.parametrize(("now", "created", "started", "timeout", "ttl", "reason"), OVERDUE)
def test_overdue_reason(
    now: float,
    created: float,
    started: float | None,
    timeout: float | None,
    ttl: float,
    reason: Overdue,
) -> None:
    assert overdue_reason(now, created, started, timeout, ttl) is reason


LOST_WORKERS = [
    # (now, last_seen, registered_at, heartbeat_timeout_s)
    # 100 - 90 = 10 <= 15: a recent ping.
    pytest.param(100, 90, 0, 15, False, id="a worker that pinged recently is alive"),
    # 100 - 85 = 15, not > 15: exactly at the timeout is still alive.
    pytest.param(100, 85, 0, 15, False, id="a worker exactly at the timeout is alive"),
    # 100 - 80 = 20 > 15: silent too long.
    pytest.param(100, 80, 0, 15, True, id="a silent worker is lost"),
    # Never pinged: 100 - 90 = 10 <= 15 from registration (a control plane restart).
    pytest.param(100, None, 90, 15, False, id="a new worker gets a full timeout to ping"),
    # Never pinged: 100 - 50 = 50 > 15.
    pytest.param(100, None, 50, 15, True, id="a worker that never pinged is lost in time"),
    # last_seen 0 is a time, not "never": 100 - 0 = 100 > 15, registration ignored.
    pytest.param(100, 0, 95, 15, True, id="a last ping at time zero still counts as a ping"),
]


@pytest.mark.parametrize(("now", "last_seen", "registered", "timeout", "lost"), LOST_WORKERS)
def test_worker_is_lost(
    now: float, last_seen: float | None, registered: float, timeout: float, lost: bool
) -> None:
    assert worker_is_lost(now, last_seen, registered, timeout) is lost
