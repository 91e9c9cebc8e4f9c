"""What to do with a job whose worker was lost, and when a running job must be stopped."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LostJobAction(enum.Enum):
    REQUEUE = "requeue"
    FAIL = "fail"


@dataclass(frozen=True)
class LostJobDecision:
    action: LostJobAction
    reason: str


def decide_lost_job(retries: int, max_retries: int, cause: str) -> LostJobDecision:
    """Requeue a job whose worker died or forgot it, until it has used its retries.

    >>> decide_lost_job(0, 3, "worker w1 died").action
    <LostJobAction.REQUEUE: 'requeue'>
    >>> decide_lost_job(3, 3, "worker w1 died").reason
    'worker w1 died; gave up after 3 retries'

    Why a limit: a job that crashes every worker it lands on would otherwise spin workers up
    forever and bill for all of them (spec section 5, complaint 5).
    """
    if retries < max_retries:
        return LostJobDecision(LostJobAction.REQUEUE, cause)
    return LostJobDecision(LostJobAction.FAIL, f"{cause}; gave up after {retries} retries")


class Overdue(enum.Enum):
    NO = "no"
    EXECUTION_TIMEOUT = "execution_timeout"
    TTL = "ttl"


def overdue_reason(
    now: float,
    created_at: float,
    started_at: float | None,
    execution_timeout_s: float | None,
    ttl_s: float,
) -> Overdue:
    """Why a running job must end now, if it must.

    >>> overdue_reason(now=110, created_at=0, started_at=100, execution_timeout_s=5, ttl_s=600)
    <Overdue.EXECUTION_TIMEOUT: 'execution_timeout'>
    >>> overdue_reason(now=610, created_at=0, started_at=600, execution_timeout_s=None, ttl_s=600)
    <Overdue.TTL: 'ttl'>
    """
    timed = started_at is not None and execution_timeout_s is not None
    if timed and now >= started_at + execution_timeout_s:  # type: ignore[operator]
        return Overdue.EXECUTION_TIMEOUT
    if now >= created_at + ttl_s:
        return Overdue.TTL
    return Overdue.NO


def worker_is_lost(
    now: float, last_seen: float | None, registered_at: float, heartbeat_timeout_s: float
) -> bool:
    """A worker that has said nothing for `heartbeat_timeout_s` is lost.

    A worker that never spoke counts from when the control plane learnt of it, so a control
    plane restart gives remote workers a full timeout to ping again before their jobs move.

    >>> worker_is_lost(now=100, last_seen=80, registered_at=0, heartbeat_timeout_s=15)
    True
    >>> worker_is_lost(now=100, last_seen=None, registered_at=90, heartbeat_timeout_s=15)
    False
    """
    reference = last_seen if last_seen is not None else registered_at
    return now - reference > heartbeat_timeout_s
