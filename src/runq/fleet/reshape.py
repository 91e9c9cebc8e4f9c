"""Carries out `runq.policy.reshape` on live workers: resizes and rolling redeploys.

The scheduler calls `step` once per endpoint per tick, after its scaling plan. This module
remembers which workers run an endpoint's previous definition (a roll in progress) and which
workers are retiring (they take no new job and stop once they hold none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from runq.core.spec import EndpointSpec
from runq.core.worker import Worker, WorkerState
from runq.fleet.fleet import Fleet
from runq.fleet.lb import LoadBalancer
from runq.policy.reshape import FleetView, resize, roll

log = logging.getLogger("runq.fleet")

# A retiring worker is stopped this long after it was told to take no more jobs at the
# earliest: a take that was already in the store when it was told finishes and shows up first.
RETIRE_SETTLE_S = 0.5

Clock = Callable[[], float]
StartWorker = Callable[[EndpointSpec, str], None]


@dataclass
class _Roll:
    old: set[str] = field(default_factory=set)
    replaced: int = 0


class Reshaper:
    def __init__(self, fleet: Fleet, lb: LoadBalancer, clock: Clock, start: StartWorker) -> None:
        self._fleet = fleet
        self._lb = lb
        self._clock = clock
        self._stop = fleet.stop
        self._start = start
        self._rolls: dict[str, _Roll] = {}
        self._retiring: dict[str, tuple[float, str]] = {}  # worker id -> (since, why)

    def begin_roll(self, endpoint: str) -> None:
        """Every worker the endpoint has now runs its previous definition: replace them."""
        current = {w.id for w in self._fleet.workers(endpoint) if w.managed}
        if not current:
            return
        self._rolls[endpoint] = _Roll(old=current)  # a roll in progress starts over
        log.info("endpoint %s redeployed: rolling %d worker(s)", endpoint, len(current))

    def rolling(self, endpoint: str) -> bool:
        return endpoint in self._rolls

    def forget(self, endpoint: str) -> None:
        self._rolls.pop(endpoint, None)

    def step(self, spec: EndpointSpec, in_queue: int, may_start: bool = True) -> None:
        """Stop retired workers that hold nothing, then resize, then roll one step (starting
        no worker while `may_start` is False: the endpoint's crash-loop back-off)."""
        now = self._clock()
        self._stop_retired(spec.name, now)
        workers = [w for w in self._fleet.workers(spec.name) if w.managed and not w.draining]
        by_id = {w.id: w for w in workers}
        roll_state = self._rolls.get(spec.name)
        old = roll_state.old if roll_state is not None else set()
        views = [FleetView(w.id, w.state, w.since, w.active, w.id in old) for w in workers]
        scaling = spec.scaling
        sized = resize(views, scaling.active_workers, scaling.max_workers, in_queue)
        for worker_id in sized.demote:
            by_id[worker_id].active = False
        for worker_id in sized.promote:
            by_id[worker_id].active = True
        why = f"active/max workers now {scaling.active_workers}/{scaling.max_workers}"
        for worker_id in sized.stop:
            self._stop(by_id.pop(worker_id), f"released: {why}")
        for worker_id in sized.drain:
            self.retire(by_id.pop(worker_id), f"released: {why}", now)
        if roll_state is None:
            return
        views = [v for v in views if v.id in by_id]
        step = roll(views, scaling.active_workers, roll_state.replaced)
        roll_state.replaced = step.replaced
        for worker_id in step.stop:
            self._stop(by_id[worker_id], "replaced by the redeployed worker")
        for worker_id in step.drain:
            self.retire(by_id[worker_id], "replaced by the redeployed worker", now)
        for _ in range(step.start if may_start else 0):
            self._start(spec, "rolling redeploy")
        if step.done:
            del self._rolls[spec.name]
            log.info("endpoint %s: rolling redeploy done", spec.name)

    def retire(self, worker: Worker, why: str, now: float) -> None:
        """No new job for `worker`; it is stopped once it holds none."""
        worker.draining = True
        self._retiring[worker.id] = (now, why)
        self._fleet.retire_takes(worker.endpoint)  # its held take answers empty

    def _stop_retired(self, endpoint: str, now: float) -> None:
        for worker_id, (since, why) in list(self._retiring.items()):
            worker = self._fleet.worker(worker_id)
            if worker is None or worker.state == WorkerState.TERMINATED:
                del self._retiring[worker_id]
                continue
            if worker.endpoint != endpoint or now - since < RETIRE_SETTLE_S:
                continue
            if worker.jobs or self._lb.outstanding(worker_id):
                continue  # still finishing
            del self._retiring[worker_id]
            self._stop(worker, why)
