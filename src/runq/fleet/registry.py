"""Which workers exist, what each holds, and when each last spoke."""

from __future__ import annotations

import collections
import hmac
import secrets
import statistics
from collections.abc import Callable, Iterable

from runq.core.worker import Placement, Transition, Worker, WorkerState
from runq.fleet import lifecycle

Clock = Callable[[], float]
HISTORY = 500  # terminated workers kept for `runq workers`, the admin API and the cost ledger


def new_worker_id(endpoint: str) -> str:
    return f"{endpoint}-{secrets.token_hex(4)}"


TYPICAL_OF = 20  # recent cold starts a typical one is the median of


HANDED_KEPT = 4096  # per worker: the latest jobs handed to it, to tell real claims from phantom


class WorkerRegistry:
    """Workers by id. In memory: workers re-register when the control plane restarts."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._workers: dict[str, Worker] = {}
        # The same workers by endpoint: the scheduler, /health and the dashboard read one
        # endpoint's workers many times a second, which must not cost a pass over the fleet.
        self._by_endpoint: dict[str, dict[str, Worker]] = {}
        # typical_cold_start by endpoint, read by every tick: dropped when one of the
        # endpoint's workers changes state (a cold start ends with a move to IDLE).
        self._typical: dict[str, float | None] = {}
        self._gone: collections.deque[Worker] = collections.deque(maxlen=HISTORY)

    def register(
        self,
        endpoint: str,
        worker_id: str | None = None,
        token: str = "",
        managed: bool = True,
        state: WorkerState = WorkerState.INITIALIZING,
        active: bool = False,
        placement: Placement | None = None,
        reason: str = "started",
    ) -> Worker:
        worker = Worker(
            id=worker_id or new_worker_id(endpoint),
            endpoint=endpoint,
            token=token or secrets.token_urlsafe(24),
            managed=managed,
            active=active,
            placement=placement,
        )
        lifecycle.begin(worker, state, self._clock(), reason if managed else "joined")
        replaced = self._workers.get(worker.id)
        if replaced is not None:
            self._unindex(replaced)
        self._workers[worker.id] = worker
        self._by_endpoint.setdefault(endpoint, {})[worker.id] = worker
        self._typical.pop(endpoint, None)
        return worker

    def move(self, worker: Worker, state: WorkerState, reason: str) -> bool:
        """Moves a worker through the state machine at the registry's clock."""
        self._typical.pop(worker.endpoint, None)
        return lifecycle.move(worker, state, self._clock(), reason)

    def get(self, worker_id: str) -> Worker | None:
        return self._workers.get(worker_id)

    def remove(self, worker_id: str, reason: str = "exited") -> Worker | None:
        worker = self._workers.pop(worker_id, None)
        if worker is not None:
            self._unindex(worker)
            self.move(worker, WorkerState.TERMINATED, reason)
            if len(self._gone) == self._gone.maxlen:  # the oldest leaves the history
                self._typical.pop(self._gone[0].endpoint, None)
            self._gone.append(worker)
        return worker

    def _unindex(self, worker: Worker) -> None:
        mine = self._by_endpoint.get(worker.endpoint)
        if mine is not None and mine.get(worker.id) is worker:
            del mine[worker.id]
            if not mine:
                del self._by_endpoint[worker.endpoint]

    def all(self, endpoint: str | None = None) -> list[Worker]:
        """The workers that exist now (not terminated)."""
        if endpoint is None:
            return list(self._workers.values())
        return list(self._by_endpoint.get(endpoint, {}).values())

    def history(self, endpoint: str | None = None) -> list[Worker]:
        """Every worker still known, terminated ones included, oldest first."""
        gone = [w for w in self._gone if endpoint is None or w.endpoint == endpoint]
        return [*gone, *self.all(endpoint)]

    def typical_cold_start(self, endpoint: str) -> float | None:
        """The median of the endpoint's last 20 measured cold starts; None before the first.
        What the scalers plan with and what a queued job's start estimate counts down from."""
        if endpoint in self._typical:
            return self._typical[endpoint]
        measured = [w.cold_start_s for w in self.history(endpoint) if w.cold_start_s is not None]
        typical = statistics.median(measured[-TYPICAL_OF:]) if measured else None
        self._typical[endpoint] = typical
        return typical

    def check_token(self, worker_id: str, token: str) -> bool:
        worker = self._workers.get(worker_id)
        return worker is not None and hmac.compare_digest(worker.token, token)

    def seen(self, worker: Worker) -> None:
        """The worker spoke: it is alive and past its cold start."""
        worker.last_seen = self._clock()
        if worker.state == WorkerState.INITIALIZING:
            self.move(worker, WorkerState.IDLE, "ready: first call to the control plane")

    def took(self, worker: Worker, job_ids: Iterable[str]) -> None:
        now = self._clock()
        job_ids = list(job_ids)
        worker.jobs.update(dict.fromkeys(job_ids, now))
        worker.handed.update(dict.fromkeys(job_ids))
        while len(worker.handed) > HANDED_KEPT:
            del worker.handed[next(iter(worker.handed))]
        if worker.jobs and worker.state in (WorkerState.IDLE, WorkerState.INITIALIZING):
            self.move(worker, WorkerState.RUNNING, "took a job")

    def claimed(self, worker: Worker, job_ids: Iterable[str]) -> list[str]:
        """A ping lists the jobs a worker holds. Those it was never handed (an SDK that loaded
        another worker's state, e.g. a shared `.runpod_jobs.pkl`) are noted in its timeline,
        once each; returns the new ones."""
        phantom = sorted(
            job_id
            for job_id in job_ids
            if job_id not in worker.handed and job_id not in worker.phantom_jobs
        )
        if phantom and worker.managed:  # an adopted worker's earlier jobs are not in `handed`
            worker.phantom_jobs.update(phantom)
            shown = ", ".join(phantom[:5]) + (" ..." if len(phantom) > 5 else "")
            reason = (
                f"claims {len(phantom)} job(s) runq never handed it: {shown} (state left by "
                "another worker? it may count itself busy and take no work)"
            )
            worker.transitions.append(Transition(self._clock(), worker.state, reason))
            return phantom
        return []

    def released(self, worker_id: str | None, job_id: str) -> None:
        worker = self._workers.get(worker_id) if worker_id else None
        if worker is None:
            return
        if worker.jobs.pop(job_id, None) is not None:
            worker.jobs_done += 1
        worker.ping_misses.pop(job_id, None)
        if not worker.jobs and worker.state == WorkerState.RUNNING:
            self.move(worker, WorkerState.IDLE, "no job left")

    def counts(self, endpoint: str) -> dict[str, int]:
        """Workers by state, in /health's shape (spec 1.4.9)."""
        result = dict.fromkeys(
            ("idle", "initializing", "ready", "running", "throttled", "unhealthy"), 0
        )
        for worker in self.all(endpoint):
            key = worker.state.value
            if key in result:
                result[key] += 1
        result["ready"] = result["idle"]
        return result
