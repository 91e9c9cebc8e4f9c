"""Workers as the control plane sees them, and the moves their state machine allows."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class WorkerState(enum.StrEnum):
    INITIALIZING = "initializing"  # process started, not yet talking (cold start)
    IDLE = "idle"  # ready, holds no job
    RUNNING = "running"  # holds at least one job
    THROTTLED = "throttled"  # wanted, but no GPU is free for it: no process yet
    UNHEALTHY = "unhealthy"  # cold start past init_timeout, or it reported a failed check
    PARKED = "parked"  # FlashBoot: process frozen after its idle timeout, not billed
    TERMINATED = "terminated"


# Which states a worker may move to from each state (fleet/lifecycle.py enforces it).
MOVES: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.THROTTLED: frozenset({WorkerState.INITIALIZING, WorkerState.TERMINATED}),
    WorkerState.INITIALIZING: frozenset(
        {WorkerState.IDLE, WorkerState.RUNNING, WorkerState.UNHEALTHY, WorkerState.TERMINATED}
    ),
    WorkerState.IDLE: frozenset(
        {WorkerState.RUNNING, WorkerState.PARKED, WorkerState.UNHEALTHY, WorkerState.TERMINATED}
    ),
    WorkerState.RUNNING: frozenset(
        {WorkerState.IDLE, WorkerState.UNHEALTHY, WorkerState.TERMINATED}
    ),
    WorkerState.PARKED: frozenset({WorkerState.IDLE, WorkerState.TERMINATED}),
    WorkerState.UNHEALTHY: frozenset({WorkerState.TERMINATED}),
    WorkerState.TERMINATED: frozenset(),
}


@dataclass(frozen=True)
class Transition:
    """One move of a worker's state: when, to what, and why."""

    at: float
    state: WorkerState
    reason: str = ""


@dataclass(frozen=True)
class Placement:
    """Where a worker runs: a host and the GPUs it holds there ("cpu" workers hold none)."""

    host: str
    gpu_indices: tuple[int, ...] = ()
    gpu_type: str = "cpu"
    category: str = "cpu"


@dataclass
class Worker:
    """One worker of an endpoint. Mutable: the fleet updates it as the worker talks."""

    id: str
    endpoint: str
    token: str
    state: WorkerState = WorkerState.INITIALIZING
    started_at: float = 0.0
    last_seen: float | None = None  # last ping, take or result; None until its first call
    jobs: dict[str, float] = field(default_factory=dict)  # handed to it, not done: id -> when
    pinged_jobs: frozenset[str] = frozenset()  # what its last ping said it holds
    # The latest jobs handed to it (insertion order, capped): a ping that claims a job not
    # among them claims one it was never given (state left by another worker).
    handed: dict[str, None] = field(default_factory=dict)
    phantom_jobs: set[str] = field(default_factory=set)  # claimed, never handed: noted once
    ping_misses: dict[str, int] = field(default_factory=dict)  # job -> pings that lacked it
    managed: bool = True  # started by runq's provisioner (False: adopted after a restart)
    draining: bool = False
    runpod_version: str | None = None
    unhealthy_reason: str | None = None
    active: bool = False  # one of the endpoint's always-on workers (active price, never parked)
    placement: Placement | None = None
    transitions: list[Transition] = field(default_factory=list)
    ready_at: float | None = None  # end of its cold start
    # Cold-start marks (epoch s): the provisioner sets `spawned_at` when the process is
    # started or forked (environment and model already prepared); runq's worker SDK reports
    # the other two. A runpod-SDK worker reports none and its breakdown shows fewer phases.
    spawned_at: float | None = None
    imported_at: float | None = None  # the worker SDK was imported (interpreter up)
    loaded_at: float | None = None  # the handler module's init ran: worker.start() was called
    forked: bool = False  # forked from a preloaded template process
    # Image workers (fleet/containers.py): the image pull (both marks equal on a cache hit)
    # and the container's start, after `spawned_at` (the engine's `run`).
    image_pull_started_at: float | None = None
    image_pulled_at: float | None = None
    image_pull_bytes: int = 0  # the pulled image's size as the engine reports it; 0 on a hit
    image_digest: str = ""
    container_started_at: float | None = None
    jobs_done: int = 0
    port: int | None = None  # load_balancer endpoints: its HTTP server (PORT)
    health_port: int | None = None  # and its GET /ping (PORT_HEALTH)

    @property
    def since(self) -> float:
        """When the worker entered its current state."""
        return self.transitions[-1].at if self.transitions else self.started_at

    @property
    def cold_start_s(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at
