"""GET /metrics: Prometheus text format, for an admin key (Bearer, as Prometheus's
`authorization` scrape setting sends it).

One `CollectorRegistry` per app (never the process-global one: tests run several apps in one
process) holding one collector that reads live state at scrape time: the store's queue and
ended-job counts, the worker registry and ledger, and the control plane's delay and
execution histograms. The store is async and a collector is not, so each scrape first reads
the store (`refresh`), then renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fastapi import APIRouter, Request
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.responses import Response

from runq.api.auth import ApiKeys
from runq.api.coldstart_metrics import ColdStartTally
from runq.api.family_text import HistogramFamilyText
from runq.core.job import JobStatus
from runq.core.reads import QueueStats
from runq.core.worker import WorkerState
from runq.fleet.endpoints import Endpoints
from runq.fleet.fleet import Fleet
from runq.fleet.job_timing import Histogram
from runq.fleet.jobs import Jobs
from runq.fleet.ledger import Ledger
from runq.fleet.usage_tally import UsageTally
from runq.policy.usage import Usage, worker_usage

router = APIRouter(tags=["metrics"])

_LIVE_STATES = [state for state in WorkerState if state is not WorkerState.TERMINATED]


@dataclass(frozen=True)
class _StoreRead:
    queue: QueueStats
    ended: dict[JobStatus, int]


@dataclass(frozen=True)
class MetricSources:
    """What /metrics reads: the served endpoints, jobs, workers and their prices."""

    endpoints: Endpoints
    jobs: Jobs
    fleet: Fleet
    ledger: Ledger
    clock: Callable[[], float]


def _lifetimes(sources: MetricSources) -> dict[str, tuple[str, Usage]]:
    """Every known worker's usage over its whole life so far, by worker id."""
    now = sources.clock()
    rate = sources.ledger.rate
    return {
        w.id: (w.endpoint, worker_usage(w.transitions, rate(w), w.active, float("-inf"), now))
        for w in sources.fleet.history(None)
    }


class RunqCollector(Collector):
    def __init__(self, sources: MetricSources) -> None:
        self._sources = sources
        self._store: dict[str, _StoreRead] = {}
        self._usage = UsageTally()

    async def refresh(self) -> None:
        """Read what only the (async) store knows, for the next `collect`."""
        jobs = self._sources.jobs
        names = self._sources.endpoints.names()
        queues = await jobs.queue_stats_many(names)
        ended = await jobs.ended_totals_many(names)
        self._store = {name: _StoreRead(queues[name], ended[name]) for name in names}

    def describe(self) -> list[Metric]:
        return []  # nothing fixed to describe: registering must not read live state

    def collect(self) -> Iterator[Metric]:
        sources = self._sources
        names = sorted(self._store)
        queued = GaugeMetricFamily(
            "runq_jobs_queued", "Jobs waiting in the endpoint's queue.", labels=["endpoint"]
        )
        running = GaugeMetricFamily(
            "runq_jobs_in_progress", "Jobs a worker holds now.", labels=["endpoint"]
        )
        ended = CounterMetricFamily(
            "runq_jobs_ended",
            "Jobs that reached a final status (a retried job counts each time it ends).",
            labels=["endpoint", "status"],
        )
        for name in names:
            read = self._store[name]
            queued.add_metric([name], read.queue.in_queue)
            running.add_metric([name], read.queue.in_progress)
            for status, n in read.ended.items():
                ended.add_metric([name, status.value.lower()], n)
        yield from (queued, running, ended)

        workers = GaugeMetricFamily(
            "runq_workers", "Workers by state.", labels=["endpoint", "state"]
        )
        for name in names:
            states = [w.state for w in sources.fleet.workers(name)]
            for state in _LIVE_STATES:
                workers.add_metric([name, state.value], states.count(state))
        yield workers
        yield from self._usage_metrics(names)

    def _usage_metrics(self, names: list[str]) -> Iterator[Metric]:
        usage = self._usage.update(_lifetimes(self._sources))
        cold = CounterMetricFamily(
            "runq_cold_starts", "Workers started from nothing.", labels=["endpoint"]
        )
        revivals = CounterMetricFamily(
            "runq_worker_revivals",
            "Parked (FlashBoot) workers revived: not cold starts.",
            labels=["endpoint"],
        )
        seconds = CounterMetricFamily(
            "runq_worker_seconds",
            "Billed worker-seconds by phase; the phases add up to the billed total.",
            labels=["endpoint", "phase"],
        )
        cost = CounterMetricFamily(
            "runq_worker_cost_usd", "What the endpoint's workers cost, in USD.", labels=["endpoint"]
        )
        for name in sorted({*names, *usage}):
            used = usage.get(name, Usage())
            cold.add_metric([name], used.cold_starts)
            revivals.add_metric([name], used.revivals)
            for phase, value in (
                ("cold_start", used.cold_start_s),
                ("idle", used.idle_s),
                ("running", used.running_s),
                ("other", used.other_s),
            ):
                seconds.add_metric([name, phase], value)
            cost.add_metric([name], used.cost)
        yield from (cold, revivals, seconds, cost)


class MetricsExporter:
    """The app's registry and its collectors, and the histograms, whose text is kept per series
    until it moves (runq.api.family_text): the cold starts (endpoint x phase: three quarters
    of a scrape with 100 endpoints, 100 ms to encode in full) change only when a worker is
    first seen ready, an endpoint's job histograms only when it runs a job."""

    def __init__(self, sources: MetricSources) -> None:
        self._fleet = sources.fleet
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = RunqCollector(sources)
        self.registry.register(self.collector)
        self._cold_starts = ColdStartTally()
        self._cold_family = HistogramFamilyText(
            "runq_worker_cold_start_seconds",
            "Workers' cold starts by phase: init (environment, model fetch), image_pull and "
            "container_start (image workers), import, load (the handler's init), ready (to the "
            "first call), total.",
            labels=("endpoint", "phase"),
        )
        self._timings = sources.jobs.timings
        # The job histograms: each endpoint's lines kept until it runs a job (family_text).
        self._delay = HistogramFamilyText(
            "runq_job_delay_seconds", "Time from submission until a worker took the job."
        )
        self._execution = HistogramFamilyText(
            "runq_job_execution_seconds",
            "Time from a worker taking the job until it reported the result.",
        )

    async def render(self, accept: str) -> tuple[bytes, str]:
        """The body and its content type: Prometheus text, or OpenMetrics when `accept` (the
        scraper's Accept header) asks for it."""
        await self.collector.refresh()
        encode, content_type = choose_encoder(accept)
        self._cold_starts.update(self._fleet)
        cold = self._cold_family.render(self._cold_starts.series, encode, content_type)
        live = encode(self.registry)
        end = b""
        if live.endswith(_OPENMETRICS_END):  # one exposition: a single end marker, last
            live, end = live[: -len(_OPENMETRICS_END)], _OPENMETRICS_END
        delay = self._delay.render(_by_endpoint(self._timings.delay), encode, content_type)
        execution = self._execution.render(
            _by_endpoint(self._timings.execution), encode, content_type
        )
        return live + delay + execution + cold + end, content_type


def _by_endpoint(by: dict[str, Histogram]) -> dict[tuple[str, ...], Histogram]:
    return {(endpoint,): histogram for endpoint, histogram in by.items()}


_OPENMETRICS_END = b"# EOF\n"
_TEXT = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin key)",
    response_class=Response,
    responses={200: {"content": {"text/plain": _TEXT, "application/openmetrics-text": _TEXT}}},
)
async def metrics(request: Request) -> Response:
    keys: ApiKeys = request.app.state.keys
    keys.require_admin(request)
    exporter: MetricsExporter = request.app.state.metrics
    body, content_type = await exporter.render(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
