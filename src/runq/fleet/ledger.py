"""What workers and jobs cost: the live workers' timelines priced by runq.policy.cost."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from runq.core.hosts import Prices
from runq.core.job import Job
from runq.core.worker import Worker
from runq.policy import cost as cost_policy
from runq.policy.cost import EndpointCost, JobCost, JobSpan, Rate, WorkerCost


class Ledger:
    """Prices workers by their placement's GPU category (flex or active per second)."""

    def __init__(self, prices: Prices, workers: Callable[[str | None], Iterable[Worker]]) -> None:
        self._prices = prices
        self._workers = workers  # every known worker of an endpoint (None: all), terminated too

    def rate(self, worker: Worker) -> Rate:
        where = worker.placement
        category = where.category if where is not None else "cpu"
        flex, active = self._prices.get(category, (0.0, 0.0))
        # A CPU worker holds no GPU; the "cpu" price is per worker (0 unless [prices] sets it).
        gpus = len(where.gpu_indices) if where is not None else 0
        return Rate(flex_per_s=flex, active_per_s=active, gpus=max(gpus, 1))

    def worker(self, worker: Worker, now: float) -> WorkerCost:
        return cost_policy.worker_cost(worker.transitions, self.rate(worker), worker.active, now)

    def endpoint(self, name: str, now: float) -> EndpointCost:
        return cost_policy.endpoint_cost([self.worker(w, now) for w in self._workers(name)])

    def job(self, job: Job, now: float) -> JobCost | None:
        """A job's cost split (execution, share of cold start and idle), while its worker is
        still known; None for a job that never started or whose worker is forgotten."""
        if job.worker_id is None or job.started_at is None:
            return None
        workers = {w.id: w for w in self._workers(job.endpoint)}
        worker = workers.get(job.worker_id)
        if worker is None:
            return None
        spans = [JobSpan(job.id, worker.id, job.started_at, job.finished_at)]
        # The worker's other jobs share its cold start and idle time: count them as spans too.
        spans += [
            JobSpan(f"#{index}", worker.id, 0.0, 0.0)
            for index in range(max(worker.jobs_done - 1, 0))
        ]
        timeline = (worker.transitions, self.rate(worker), worker.active)
        costs = cost_policy.job_costs(spans, {worker.id: timeline}, now)
        return next(c for c in costs if c.job_id == job.id)
