"""Which workers exist, what each holds, and when each last spoke."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable

from runq.core.worker import Worker, WorkerState

Clock = Callable[[], float]


def new_worker_id(endpoint: str) -> str:
    return f"{endpoint}-{secrets.token_hex(4)}"


class WorkerRegistry:
    """Workers by id. In memory: workers re-register when the control plane restarts."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._workers: dict[str, Worker] = {}

    def register(
        self, endpoint: str, worker_id: str | None = None, token: str = "", managed: bool = True
    ) -> Worker:
        worker = Worker(
            id=worker_id or new_worker_id(endpoint),
            endpoint=endpoint,
            token=token or secrets.token_urlsafe(24),
            started_at=self._clock(),
            managed=managed,
        )
        self._workers[worker.id] = worker
        return worker

    def get(self, worker_id: str) -> Worker | None:
        return self._workers.get(worker_id)

    def remove(self, worker_id: str) -> Worker | None:
        worker = self._workers.pop(worker_id, None)
        if worker is not None:
            worker.state = WorkerState.TERMINATED
        return worker

    def all(self, endpoint: str | None = None) -> list[Worker]:
        return [w for w in self._workers.values() if endpoint is None or w.endpoint == endpoint]

    def check_token(self, worker_id: str, token: str) -> bool:
        worker = self._workers.get(worker_id)
        return worker is not None and hmac.compare_digest(worker.token, token)

    def seen(self, worker: Worker) -> None:
        """The worker spoke: it is alive and past its cold start."""
        worker.last_seen = self._clock()
        if worker.state == WorkerState.INITIALIZING:
            worker.state = WorkerState.IDLE

    def took(self, worker: Worker, job_ids: Iterable[str]) -> None:
        now = self._clock()
        worker.jobs.update(dict.fromkeys(job_ids, now))
        if worker.jobs:
            worker.state = WorkerState.RUNNING

    def released(self, worker_id: str | None, job_id: str) -> None:
        worker = self._workers.get(worker_id) if worker_id else None
        if worker is None:
            return
        worker.jobs.pop(job_id, None)
        worker.ping_misses.pop(job_id, None)
        if not worker.jobs and worker.state == WorkerState.RUNNING:
            worker.state = WorkerState.IDLE

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
