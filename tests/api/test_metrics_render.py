"""The Prometheus exposition keeps the cold-start histograms' text between scrapes: a worker
that becomes ready between two scrapes must still show in the second, in both formats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from runq.api.metrics import MetricsExporter, MetricSources
from runq.core.config import ServerConfig
from runq.fleet.job_timing import Histogram
from runq.server.services import Services
from runq.store.sqlite import SqliteJobStore

pytestmark = pytest.mark.timeout(30)

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Services]:
    config = ServerConfig(data_dir=tmp_path)
    store = SqliteJobStore(tmp_path / "runq.db")
    await store.open()
    yield Services(config, store, "secret")
    await store.close()


def cold_start_counts(text: str, openmetrics: bool = False) -> dict[str, float]:
    """runq_worker_cold_start_seconds count by endpoint, phase "total"."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {
        sample.labels["endpoint"]: sample.value
        for family in parse(text)
        for sample in family.samples
        if sample.name == "runq_worker_cold_start_seconds_count"
        and sample.labels["phase"] == "total"
    }


async def test_a_worker_ready_after_a_scrape_shows_in_the_next(plane: Services) -> None:
    exporter = MetricsExporter(
        MetricSources(plane.endpoints, plane.jobs, plane.fleet, plane.ledger, plane.clock)
    )
    first = plane.registry.register("echo")
    plane.registry.seen(first)  # ready: its cold start is measured
    body, _ = await exporter.render("")
    assert cold_start_counts(body.decode()) == {"echo": 1}

    second = plane.registry.register("echo")
    body, _ = await exporter.render("")
    assert cold_start_counts(body.decode()) == {"echo": 1}  # still starting

    plane.registry.seen(second)
    body, _ = await exporter.render("")
    assert cold_start_counts(body.decode()) == {"echo": 2}
    body, content_type = await exporter.render(OPENMETRICS)
    text = body.decode()
    assert content_type.startswith("application/openmetrics-text")
    assert text.count("# EOF") == 1 and text.endswith("# EOF\n")
    assert cold_start_counts(text, openmetrics=True) == {"echo": 2}
    assert "runq_workers" in text  # the live families come with the kept ones


def delay_counts(text: str, openmetrics: bool = False) -> dict[str, float]:
    """runq_job_delay_seconds count by endpoint."""
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {
        sample.labels["endpoint"]: sample.value
        for family in parse(text)
        for sample in family.samples
        if sample.name == "runq_job_delay_seconds_count"
    }


@pytest.mark.parametrize("accept", ["", OPENMETRICS], ids=["text", "openmetrics"])
async def test_a_job_histogram_kept_between_scrapes_moves_with_its_endpoint(
    plane: Services, accept: str
) -> None:
    exporter = MetricsExporter(
        MetricSources(plane.endpoints, plane.jobs, plane.fleet, plane.ledger, plane.clock)
    )
    timings = plane.jobs.timings
    timings.delay.setdefault("a", Histogram()).observe(0.2)
    timings.delay.setdefault("b", Histogram()).observe(0.3)
    openmetrics = bool(accept)
    first, _ = await exporter.render(accept)
    assert delay_counts(first.decode(), openmetrics) == {"a": 1, "b": 1}

    timings.delay["b"].observe(1.5)  # only b moves: a's lines are the kept ones
    second, _ = await exporter.render(accept)
    text = second.decode()
    assert delay_counts(text, openmetrics) == {"a": 1, "b": 2}
    assert text.count("# TYPE runq_job_delay_seconds histogram") == 1
    assert not openmetrics or (text.count("# EOF") == 1 and text.endswith("# EOF\n"))
