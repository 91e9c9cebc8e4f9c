"""Workers as the control plane sees them. The fleet issue grows the state machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class WorkerState(enum.StrEnum):
    INITIALIZING = "initializing"
    IDLE = "idle"
    RUNNING = "running"
    THROTTLED = "throttled"
    UNHEALTHY = "unhealthy"
    PARKED = "parked"
    TERMINATED = "terminated"


@dataclass
class Worker:
    """One worker process of an endpoint. Mutable: the fleet updates it as the worker talks."""

    id: str
    endpoint: str
    token: str
    state: WorkerState = WorkerState.INITIALIZING
    started_at: float = 0.0
    last_seen: float | None = None  # last ping, take or result; None until its first call
    jobs: dict[str, float] = field(default_factory=dict)  # handed to it, not done: id -> when
    pinged_jobs: frozenset[str] = frozenset()  # what its last ping said it holds
    ping_misses: dict[str, int] = field(default_factory=dict)  # job -> pings that lacked it
    managed: bool = True  # started by runq's provisioner (False: adopted after a restart)
    draining: bool = False
    runpod_version: str | None = None
    unhealthy_reason: str | None = None
