"""A discrete-event simulator of one endpoint, driven by the live scheduler's own policy.

Each decision calls `runq.policy.scaling.plan` on a snapshot built exactly as the scheduler
builds it (fleet/scheduler.py), at the scheduler's tick and on every arrival that finds no
worker able to take it (the scheduler's poke). Workers go through the same states, and cost
comes from `runq.policy.cost` over their transitions, so what the simulator predicts is what
`runq serve` does, minus the noise of real processes.

Time is virtual: nothing sleeps, and a day of traffic simulates in seconds.

Example: one job at t=0 on an endpoint scaled to zero, a 3 s cold start and a 1 s job: the
arrival pokes the policy, a worker starts, is ready at 3 s, runs the job until 4 s; its delay
is 3 s, its execution 1 s.

>>> from runq.core.spec import ScalingSection
>>> result = simulate([0.0], [1.0], SimConfig(ScalingSection(idle_timeout_s=5), cold_start_s=3))
>>> result.jobs[0].delay_s, result.jobs[0].execution_s, result.cold_starts
(3.0, 1.0, 1)
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runq.bench.dists import Dist, draw
from runq.core.spec import ScalingSection
from runq.core.stats import nearest_rank
from runq.core.worker import MOVES, Transition, WorkerState
from runq.errors import IllegalTransition
from runq.policy.cost import Rate, WorkerCost, endpoint_cost, worker_cost
from runq.policy.scaling import (
    RECENT_ARRIVALS,
    RECENT_EXECUTIONS,
    ScalingPlan,
    ScalingSnapshot,
    WorkerView,
    plan,
    still_applicable,
)

# What the simulator asks each decision: runq's `plan` by default, or a baseline policy of
# runq.policy.baselines (snapshot, scaling, park retention) -> plan.
ScalingPolicy = Callable[[ScalingSnapshot, ScalingSection, float], ScalingPlan]

_SERVING = (WorkerState.IDLE, WorkerState.RUNNING, WorkerState.INITIALIZING)

# Event kinds, in the order they run when simultaneous (a finishing job frees its worker
# before an arrival at the same instant looks for one).
_DONE, _READY, _ARRIVAL, _TICK = 0, 1, 2, 3


@dataclass(frozen=True)
class SimConfig:
    scaling: ScalingSection
    # Seconds, or a distribution sampled once per start (revival) with `seed`.
    cold_start_s: float | Dist = 10.0  # process start to ready (model load included)
    revival_s: float | Dist = 0.002  # a parked worker's resume (FlashBoot)
    tick_s: float = 0.25  # the scheduler's period
    park_retention_s: float = 600.0
    rate: Rate = field(default_factory=lambda: Rate(flex_per_s=0.00019, active_per_s=0.00013))
    seed: int = 0  # for durations drawn from a Dist
    policy: ScalingPolicy | None = None  # None: runq.policy.scaling.plan


@dataclass(frozen=True)
class SimJob:
    arrived_at: float
    started_at: float
    finished_at: float
    worker: str
    cold: bool  # it waited for a worker that was starting when it arrived

    @property
    def delay_s(self) -> float:
        return self.started_at - self.arrived_at

    @property
    def execution_s(self) -> float:
        return self.finished_at - self.started_at


@dataclass
class _Worker:
    id: str
    active: bool
    state: WorkerState
    transitions: list[Transition]
    available_at: float = 0.0  # a revived worker takes jobs from then on (its resume time)

    @property
    def since(self) -> float:
        return self.transitions[-1].at

    def move(self, state: WorkerState, at: float, reason: str) -> None:
        """The live state machine's moves only (core.worker.MOVES), as lifecycle.move."""
        if state == self.state:
            return
        if state not in MOVES[self.state]:
            raise IllegalTransition(
                f"simulated worker {self.id}: {self.state.value} -> {state.value} ({reason})"
            )
        self.state = state
        self.transitions.append(Transition(at, state, reason))


@dataclass(frozen=True)
class SimResult:
    jobs: tuple[SimJob, ...]
    workers: tuple[WorkerCost, ...]
    cold_starts: int  # workers started from nothing
    revivals: int
    end: float

    @property
    def cost(self) -> float:
        return endpoint_cost(list(self.workers)).cost

    @property
    def busy_s(self) -> float:
        return sum(w.running_s for w in self.workers)

    @property
    def idle_s(self) -> float:
        return sum(w.idle_s + w.cold_start_s for w in self.workers)

    def delay_percentile(self, q: float) -> float:
        """The q-quantile (0..1) of delay times, nearest rank as the live store takes it
        (core.stats.nearest_rank: p95 of 20 values is the 19th)."""
        value = nearest_rank(sorted(job.delay_s for job in self.jobs), q * 100)
        return 0.0 if value is None else value


class _Sim:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.now = 0.0
        self.events: list[tuple[float, int, int, object]] = []
        self.seq = itertools.count()
        self.queue: deque[tuple[int, float]] = deque()  # (job index, arrived at)
        self.workers: dict[str, _Worker] = {}
        self.running: dict[str, tuple[int, float, float, bool]] = {}  # worker -> job
        self.jobs: dict[int, SimJob] = {}
        self.cold_waiting: set[int] = set()
        self.names = (f"w{n}" for n in itertools.count(1))
        self.cold_starts = 0
        self.revivals = 0
        self.tick_due = False
        self.rng = random.Random(config.seed)
        # What the live scheduler tells the policy: recent arrivals, executions, cold starts.
        self.arrived: deque[float] = deque(maxlen=RECENT_ARRIVALS)
        self.executions: deque[float] = deque(maxlen=RECENT_EXECUTIONS)
        self.cold_measured: deque[float] = deque(maxlen=20)
        self.starting: dict[str, float] = {}

    def push(self, at: float, kind: int, data: object = None) -> None:
        heapq.heappush(self.events, (at, kind, next(self.seq), data))

    # --- policy -------------------------------------------------------------------------
    def decide(self) -> None:
        scaling = self.config.scaling
        live = [w for w in self.workers.values() if w.state != WorkerState.TERMINATED]
        snapshot = ScalingSnapshot(
            now=self.now,
            in_queue=len(self.queue),
            in_progress=len(self.running),
            oldest_queued_at=self.queue[0][1] if self.queue else None,
            workers=tuple(WorkerView(w.id, w.state, w.since, w.active) for w in live),
            recent_arrivals=tuple(self.arrived),
            recent_execution_s=tuple(self.executions),
            cold_start_s=statistics.median(self.cold_measured) if self.cold_measured else None,
        )
        decide = self.config.policy or plan
        decision = decide(snapshot, scaling, self.config.park_retention_s)
        states = {w.id: w.state for w in live}
        decision = still_applicable(decision, snapshot.workers, states)  # as the scheduler does
        for worker_id in decision.stop:
            self.workers[worker_id].move(WorkerState.TERMINATED, self.now, "stopped")
        for worker_id in decision.park:
            self.workers[worker_id].move(WorkerState.PARKED, self.now, "parked")
        for worker_id in decision.revive:
            # As live: PARKED -> IDLE at once (SIGCONT); it takes jobs once it has resumed.
            worker = self.workers[worker_id]
            worker.move(WorkerState.IDLE, self.now, "revived (FlashBoot)")
            worker.available_at = self.now + draw(self.config.revival_s, self.rng)
            self.revivals += 1
            self.push(worker.available_at, _READY, worker_id)
        for _ in range(decision.start):
            active = sum(1 for w in live if w.active) < scaling.active_workers
            worker = _Worker(
                next(self.names),
                active,
                WorkerState.INITIALIZING,
                [Transition(self.now, WorkerState.INITIALIZING, "started")],
            )
            self.workers[worker.id] = worker
            live.append(worker)
            self.cold_starts += 1
            self.starting[worker.id] = self.now
            self.push(self.now + draw(self.config.cold_start_s, self.rng), _READY, worker.id)

    # --- work ---------------------------------------------------------------------------
    def dispatch(self, execution: Sequence[float]) -> None:
        idle = [
            w
            for w in self.workers.values()
            if w.state == WorkerState.IDLE and w.available_at <= self.now
        ]
        while self.queue and idle:
            worker = idle.pop(0)
            index, arrived = self.queue.popleft()
            worker.move(WorkerState.RUNNING, self.now, "took a job")
            cold = index in self.cold_waiting
            self.running[worker.id] = (index, arrived, self.now, cold)
            self.push(self.now + execution[index], _DONE, worker.id)

    def run(self, arrivals: Sequence[float], execution: Sequence[float]) -> SimResult:
        for index, at in enumerate(arrivals):
            self.push(at, _ARRIVAL, index)
        self.push(0.0, _TICK)
        last_arrival = max(arrivals, default=0.0)
        while self.events:
            at, kind, _, data = heapq.heappop(self.events)
            self.now = at
            if kind == _ARRIVAL:
                assert isinstance(data, int)
                self.queue.append((data, at))
                self.arrived.append(at)
                serving = any(w.state in _SERVING for w in self.workers.values())
                if not serving:
                    self.cold_waiting.add(data)
                    self.decide()  # the scheduler's poke
                elif not any(w.state == WorkerState.IDLE for w in self.workers.values()):
                    self.cold_waiting.add(data)
                self.dispatch(execution)
            elif kind == _READY:
                assert isinstance(data, str)
                worker = self.workers[data]
                if worker.state == WorkerState.INITIALIZING:
                    worker.move(WorkerState.IDLE, at, "ready")
                if data in self.starting:
                    self.cold_measured.append(at - self.starting.pop(data))
                self.dispatch(execution)
            elif kind == _DONE:
                assert isinstance(data, str)
                index, arrived, started, cold = self.running.pop(data)
                self.jobs[index] = SimJob(arrived, started, at, data, cold)
                self.executions.append(at - started)
                self.workers[data].move(WorkerState.IDLE, at, "no job left")
                self.dispatch(execution)
            else:
                self.decide()
                self.dispatch(execution)
                if not self._finished(last_arrival):
                    self.push(at + self.config.tick_s, _TICK)
        for worker in self.workers.values():
            worker.move(WorkerState.TERMINATED, self.now, "end of simulation")
        rate = self.config.rate
        costs = tuple(
            worker_cost(w.transitions, rate, w.active, self.now) for w in self.workers.values()
        )
        ordered = tuple(self.jobs[i] for i in sorted(self.jobs))
        return SimResult(ordered, costs, self.cold_starts, self.revivals, self.now)

    def _finished(self, last_arrival: float) -> bool:
        """Nothing left to happen: all jobs in, none queued or running, no worker billed
        beyond the always-on ones (those would be billed forever)."""
        if self.now < last_arrival or self.queue or self.running:
            return False
        return all(
            w.active or w.state in (WorkerState.TERMINATED, WorkerState.PARKED)
            for w in self.workers.values()
        )


def simulate(
    arrivals: Sequence[float], execution_s: Sequence[float] | Dist, config: SimConfig
) -> SimResult:
    """Runs one endpoint over a trace: `arrivals[i]` (seconds, any order) brings a job that
    runs `execution_s[i]` seconds once a worker takes it. A trace without execution times
    passes a `Dist`: one draw per job, from its own stream of `config.seed` so that every
    configuration simulated with that seed sees the same jobs."""
    if not isinstance(execution_s, Sequence):
        rng = random.Random(f"execution-{config.seed}")
        execution_s = [execution_s.sample(rng) for _ in arrivals]
    if len(arrivals) != len(execution_s):
        raise ValueError(f"{len(arrivals)} arrivals but {len(execution_s)} execution times")
    return _Sim(config).run(arrivals, execution_s)
