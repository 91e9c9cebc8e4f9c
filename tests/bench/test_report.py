"""The bench report: percentiles and totals from a run's rows (pure), the jobs CSV, the plots."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from runq.bench.load import JobRow, LoadResult, WorkerSample
from runq.bench.report import (
    JOB_COLUMNS,
    Spread,
    percentile,
    plot_latency,
    plot_workers,
    summarize,
    tables,
    write_jobs_csv,
)


def make_job(index: int = 0, **overrides: Any) -> JobRow:
    """A job sent at `index` seconds that completed: 100 ms queued, 1 s running, 1.2 s seen."""
    fields: dict[str, Any] = {
        "index": index,
        "id": f"job-{index}",
        "scheduled_s": float(index),
        "submitted_s": float(index),
        "status": "COMPLETED",
        "delay_ms": 100,
        "execution_ms": 1000,
        "latency_s": 1.2,
    }
    fields.update(overrides)
    return JobRow(**fields)


def make_result(*jobs: JobRow, **overrides: Any) -> LoadResult:
    fields: dict[str, Any] = {
        "endpoint": "echo",
        "speed": 1.0,
        "wall_s": 10.0,
        "jobs": jobs,
        "cold_starts": 1,
        "revivals": 0,
        "cost_before_usd": 0.5,
        "cost_after_usd": 0.75,
    }
    fields.update(overrides)
    return LoadResult(**fields)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        pytest.param([], 50, None, id="no values have no percentile"),
        pytest.param([7.0], 99, 7.0, id="one value is every percentile"),
        # rank 0.5 * 3 = 1.5: halfway between 2 and 3
        pytest.param([4.0, 1.0, 3.0, 2.0], 50, 2.5, id="p50 of four interpolates the middle two"),
        # rank 0.9 * 10 = 9: the 10th of 0..10
        pytest.param([float(v) for v in range(11)], 90, 9.0, id="p90 of 0..10 is 9"),
        # rank 0.99 * 1 = 0.99: 0 + 0.99 * (100 - 0)
        pytest.param([0.0, 100.0], 99, 99.0, id="p99 of two values is near the top"),
        pytest.param([5.0, 1.0], 100, 5.0, id="p100 is the max"),
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], p: float, expected: float | None
) -> None:
    assert percentile(values, p) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("jobs", "figures"),
    [
        pytest.param(
            # sent at 0 s and 1 s, seen ended 1.2 s later: last at 2.2 s; 2 / 2.2 s
            [make_job(0), make_job(1)],
            {"jobs": 2, "completed": 2, "failed": 0, "unfinished": 0, "throughput": 2 / 2.2},
            id="two completed jobs: throughput over first sent to last ended",
        ),
        pytest.param(
            # only the completed one counts: 1 / (0 + 1.2)
            [make_job(0), make_job(1, status="FAILED", error="boom")],
            {"jobs": 2, "completed": 1, "failed": 1, "unfinished": 0, "throughput": 1 / 1.2},
            id="a failed job counts as failed, not in throughput",
        ),
        pytest.param(
            [
                make_job(0),
                make_job(
                    1,
                    id=None,
                    status="REFUSED",
                    delay_ms=None,
                    execution_ms=None,
                    latency_s=None,
                    error="429: queue full",
                ),
                make_job(2, status="TIMED_OUT"),
            ],
            {"jobs": 3, "completed": 1, "failed": 2, "unfinished": 0, "throughput": 1 / 1.2},
            id="refused by /run and timed out are both failures",
        ),
        pytest.param(
            [make_job(0), make_job(1, status="IN_PROGRESS", execution_ms=None, latency_s=None)],
            {"jobs": 2, "completed": 1, "failed": 0, "unfinished": 1, "throughput": 1 / 1.2},
            id="a job still running when waiting stopped is unfinished",
        ),
        pytest.param(
            [make_job(0, status="FAILED")],
            {"jobs": 1, "completed": 0, "failed": 1, "unfinished": 0, "throughput": None},
            id="nothing completed: no throughput",
        ),
    ],
)
def test_summary_counts_jobs_by_outcome_and_measures_throughput(
    jobs: list[JobRow], figures: dict[str, Any]
) -> None:
    summary = summarize(make_result(*jobs))
    assert (summary.jobs, summary.completed, summary.failed, summary.unfinished) == (
        figures["jobs"],
        figures["completed"],
        figures["failed"],
        figures["unfinished"],
    )
    expected = figures["throughput"]
    assert summary.throughput_per_s == (None if expected is None else pytest.approx(expected))


def test_summary_spreads_are_in_seconds_over_the_jobs_that_ended() -> None:
    # delays 0.1 .. 1.0 s over ten ended jobs; the unfinished one (9 s so far) is left out
    jobs = [make_job(i, delay_ms=100 * (i + 1), execution_ms=2000) for i in range(10)]
    jobs.append(make_job(10, status="IN_QUEUE", delay_ms=9000, execution_ms=None, latency_s=None))
    summary = summarize(make_result(*jobs))
    # rank 0.5 * 9 = 4.5: between 0.5 and 0.6; rank 0.9 * 9 = 8.1: 0.9 + 0.1 * 0.1
    assert summary.delay_s.p50 == pytest.approx(0.55)
    assert summary.delay_s.p90 == pytest.approx(0.91)
    assert summary.delay_s.max == pytest.approx(1.0)
    assert summary.execution_s == Spread(2.0, 2.0, 2.0, 2.0, 2.0)
    assert summary.latency_s.p99 == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("before", "after", "cost", "per_job"),
    [
        # 0.75 - 0.5 = 0.25 for 2 completed jobs
        pytest.param(0.5, 0.75, 0.25, 0.125, id="cost is the endpoint's rise during the run"),
        pytest.param(None, None, None, None, id="no admin key: no cost"),
    ],
)
def test_cost_of_a_run_and_per_completed_job(
    before: float | None, after: float | None, cost: float | None, per_job: float | None
) -> None:
    result = make_result(make_job(0), make_job(1), cost_before_usd=before, cost_after_usd=after)
    summary = summarize(result)
    assert summary.cost_usd == (None if cost is None else pytest.approx(cost))
    assert summary.cost_per_job_usd == (None if per_job is None else pytest.approx(per_job))
    assert summary.as_dict()["cost_per_job_usd"] == summary.cost_per_job_usd


def test_tables_show_percentiles_and_totals() -> None:
    summary = summarize(make_result(make_job(0), make_job(1, status="FAILED")))
    console = Console(width=120, record=True)
    for table in tables(summary, "runq bench echo: 2 jobs"):
        console.print(table)
    text = console.export_text()
    assert "runq bench echo: 2 jobs" in text
    assert "delay" in text and "0.100" in text  # 100 ms of delay, in seconds
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()]
    totals = {row[0]: row[1] for row in cells if len(row) == 2}
    assert (totals["jobs"], totals["completed"], totals["failed"]) == ("2", "1", "1")
    assert totals["cold starts"] == "1" and totals["cost $"] == "0.25000"


def test_jobs_csv_has_one_row_per_job_with_blanks_for_unknowns(tmp_path: Path) -> None:
    refused = make_job(
        1,
        id=None,
        status="REFUSED",
        delay_ms=None,
        execution_ms=None,
        latency_s=None,
        error="429: queue full",
    )
    path = tmp_path / "jobs.csv"
    write_jobs_csv(make_result(make_job(0), refused), path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == JOB_COLUMNS
    assert [r["id"] for r in rows] == ["job-0", ""]
    assert rows[0]["delay_ms"] == "100" and rows[0]["execution_ms"] == "1000"
    assert rows[1]["delay_ms"] == "" and rows[1]["error"] == "429: queue full"


@pytest.mark.parametrize(
    "samples",
    [
        pytest.param(
            (
                WorkerSample(0.0, {}),
                WorkerSample(0.5, {"initializing": 1}),
                WorkerSample(1.0, {"running": 1, "idle": 1}),
            ),
            id="workers sampled",
        ),
        pytest.param((), id="no samples (an invoke-only key)"),
    ],
)
def test_plots_are_png_files(tmp_path: Path, samples: tuple[WorkerSample, ...]) -> None:
    result = make_result(make_job(0), make_job(1, status="IN_QUEUE"), samples=samples)
    plot_latency(result, tmp_path / "latency.png")
    plot_workers(result, tmp_path / "workers.png")
    for name in ("latency.png", "workers.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
