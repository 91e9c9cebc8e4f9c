"""What a `runq bench` run measured: the summary (pure maths over a LoadResult), its rich tables,
a CSV of every job, and PNG plots of latency and of workers by state over time.

matplotlib is imported inside the plot functions: the CLI loads this module for every run, and
plotting alone needs it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from runq.bench.load import REFUSED, TERMINAL, LoadResult

PERCENTILES = (50, 90, 95, 99)
# Stacking order of the workers plot: starting at the bottom, serving above it.
STATES = ("initializing", "throttled", "idle", "running", "parked", "unhealthy")
JOB_COLUMNS = (
    "index",
    "id",
    "scheduled_s",
    "submitted_s",
    "status",
    "delay_ms",
    "execution_ms",
    "latency_s",
    "error",
)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile, interpolating linearly between closest ranks (numpy's default);
    None for no values.

    Example: [1, 2, 3, 4] at p50: rank 0.50 * (4 - 1) = 1.5, so 2 + 0.5 * (3 - 2) = 2.5.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


@dataclass(frozen=True)
class Spread:
    """Percentiles of one figure, in seconds."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        p50, p90, p95, p99 = (percentile(values, p) for p in PERCENTILES)
        return cls(p50, p90, p95, p99, max(values) if values else None)


@dataclass(frozen=True)
class Summary:
    jobs: int
    completed: int
    failed: int  # ended otherwise: FAILED, TIMED_OUT, CANCELLED, or refused by /run
    unfinished: int  # still queued or running when the run stopped waiting
    delay_s: Spread  # over jobs that ended: queued until a worker took them
    execution_s: Spread
    latency_s: Spread  # /run sent -> end seen by the client
    throughput_per_s: float | None  # completed jobs / (last completion - first submission)
    cold_starts: int | None
    revivals: int | None
    cost_usd: float | None
    wall_s: float

    @property
    def cost_per_job_usd(self) -> float | None:
        return (
            None if self.cost_usd is None or not self.completed else self.cost_usd / self.completed
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready figures, for summary.json and benchmark scripts."""
        return {**asdict(self), "cost_per_job_usd": self.cost_per_job_usd}


def summarize(result: LoadResult) -> Summary:
    """The figures of a run.

    Example: jobs submitted at 0 s and 1 s that complete with latencies 2 s and 3 s: the last
    completion is at 1 + 3 = 4 s, so throughput is 2 jobs / (4 - 0) s = 0.5 jobs/s.
    """
    ended = [j for j in result.jobs if j.status in TERMINAL]
    completed = [j for j in ended if j.status == "COMPLETED"]
    refused = sum(1 for j in result.jobs if j.status == REFUSED)
    delays = [j.delay_ms / 1000 for j in ended if j.delay_ms is not None]
    executions = [j.execution_ms / 1000 for j in ended if j.execution_ms is not None]
    latencies = [j.latency_s for j in ended if j.latency_s is not None]
    finishes = [j.finished_s for j in completed if j.finished_s is not None]
    throughput = None
    if finishes:
        span = max(finishes) - min(j.submitted_s for j in result.jobs)
        throughput = len(finishes) / span if span > 0 else None
    return Summary(
        jobs=len(result.jobs),
        completed=len(completed),
        failed=len(ended) - len(completed) + refused,
        unfinished=len(result.jobs) - len(ended) - refused,
        delay_s=Spread.of(delays),
        execution_s=Spread.of(executions),
        latency_s=Spread.of(latencies),
        throughput_per_s=throughput,
        cold_starts=result.cold_starts,
        revivals=result.revivals,
        cost_usd=result.cost_usd,
        wall_s=result.wall_s,
    )


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def tables(summary: Summary, title: str) -> tuple[Table, Table]:
    """Two tables: percentiles of delay, execution and end-to-end latency; then the totals."""
    spreads = Table("seconds", *(f"p{p}" for p in PERCENTILES), "max", title=title)
    for name, spread in (
        ("delay", summary.delay_s),
        ("execution", summary.execution_s),
        ("end-to-end", summary.latency_s),
    ):
        cells = (spread.p50, spread.p90, spread.p95, spread.p99, spread.max)
        spreads.add_row(name, *(_num(v) for v in cells))
    totals = Table("figure", "value")
    for name, value in (
        ("jobs", str(summary.jobs)),
        ("completed", str(summary.completed)),
        ("failed", str(summary.failed)),
        ("unfinished", str(summary.unfinished)),
        ("cold starts", "-" if summary.cold_starts is None else str(summary.cold_starts)),
        ("revivals", "-" if summary.revivals is None else str(summary.revivals)),
        ("throughput jobs/s", _num(summary.throughput_per_s, 2)),
        ("cost $", _num(summary.cost_usd, 5)),
        ("cost $ per job", _num(summary.cost_per_job_usd, 6)),
        ("wall time s", _num(summary.wall_s, 1)),
    ):
        totals.add_row(name, value)
    return spreads, totals


def write_jobs_csv(result: LoadResult, path: Path) -> None:
    """One row per job, in submission order, columns as JOB_COLUMNS; empty cells for unknowns."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_COLUMNS)
        for job in result.jobs:
            writer.writerow(
                [
                    job.index,
                    job.id or "",
                    f"{job.scheduled_s:.3f}",
                    f"{job.submitted_s:.3f}",
                    job.status,
                    "" if job.delay_ms is None else job.delay_ms,
                    "" if job.execution_ms is None else job.execution_ms,
                    "" if job.latency_s is None else f"{job.latency_s:.3f}",
                    job.error or "",
                ]
            )


def plot_latency(result: LoadResult, path: Path) -> None:
    """Delay and execution time of each ended job against when it was submitted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas: PNG without a display
    axes = figure.subplots()
    for label, attribute, marker in (
        ("delay", "delay_ms", "o"),
        ("execution", "execution_ms", "x"),
    ):
        points = [
            (job.submitted_s, value / 1000)
            for job in result.jobs
            if job.status in TERMINAL and (value := getattr(job, attribute)) is not None
        ]
        axes.scatter(
            [x for x, _ in points], [y for _, y in points], s=12, marker=marker, label=label
        )
    axes.set_xlabel("submitted at (s from the start)")
    axes.set_ylabel("seconds")
    axes.set_title(f"{result.endpoint}: delay and execution time per job")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    figure.savefig(path, format="png", dpi=100)


def plot_workers(result: LoadResult, path: Path) -> None:
    """Workers by state over time, stacked; a note instead when there were no samples."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    if result.samples:
        times = [s.at_s for s in result.samples]
        seen = {state for s in result.samples for state in s.states}
        states = [s for s in STATES if s in seen] + sorted(seen - set(STATES))
        counts = [[sample.states.get(state, 0) for sample in result.samples] for state in states]
        if states:
            axes.stackplot(times, counts, labels=states, step="post")
            axes.legend(loc="upper left")
    else:
        axes.text(0.5, 0.5, "no worker samples (needs an admin key)", ha="center")
    axes.set_xlabel("seconds from the start")
    axes.set_ylabel("workers")
    axes.set_title(f"{result.endpoint}: workers by state")
    axes.grid(alpha=0.3)
    figure.savefig(path, format="png", dpi=100)
