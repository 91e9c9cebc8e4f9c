"""Endpoint metrics on a live server: GET /admin/endpoints/{name}/metrics, the latency summary
in GET /admin/endpoints, Prometheus GET /metrics, and `runq metrics`.

One server for the module: it runs four sleep jobs of known length once, then each test reads
what the server reports about them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, free_port

pytestmark = pytest.mark.timeout(60)

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
SLEEPS = [0.1, 0.2, 0.3, 0.4]  # one worker runs them one after another


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(root=tmp_path_factory.mktemp("metrics"), port=free_port())
    server.add_endpoint("sleepy", "native_sleep.py", workers=1)
    server.add_endpoint("quiet", "native_echo.py", workers=1)
    try:
        server.start()
        ids = [server.run("sleepy", {"input": {"seconds": s}}) for s in SLEEPS]
        for job_id in ids:
            server.wait_status("sleepy", job_id, {"COMPLETED"})
        yield server
    finally:
        server.stop()


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = server.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_window_counts_the_jobs_and_gives_plausible_percentiles(live: Server) -> None:
    response = live.get("/admin/endpoints/sleepy/metrics?window=300")
    assert response.status_code == 200, response.text
    body = response.json()

    assert body["window_s"] == 300
    assert body["jobs"] == {"ended": 4, "completed": 4, "failed": 0, "cancelled": 0, "timed_out": 0}
    execution, delay = body["execution_s"], body["delay_s"]
    assert execution["count"] == delay["count"] == 4
    # Nearest rank of four: p50 is the 2nd job (0.2 s of sleep), p99 the 4th (0.4 s).
    assert 0.2 <= execution["p50"] < 0.2 + 1.0
    assert 0.4 <= execution["p99"] < 0.4 + 1.0
    assert execution["p50"] <= execution["p90"] <= execution["p95"] <= execution["p99"]
    assert 0 <= delay["p50"] <= delay["p99"] < 10
    workers = body["workers"]
    assert workers["cold_starts"] == 1 and workers["revivals"] == 0  # its one worker started
    assert 0 < workers["billed_s"] <= 300
    assert workers["running_s"] >= sum(SLEEPS) - 0.05
    assert workers["cold_start_s"] > 0


def test_a_window_before_the_jobs_holds_none_of_them(live: Server) -> None:
    body = live.get("/admin/endpoints/quiet/metrics", params={"window": "0.5"}).json()
    assert body["jobs"]["ended"] == 0
    assert body["delay_s"] == {"count": 0, "p50": None, "p90": None, "p95": None, "p99": None}


def test_the_endpoint_list_has_a_latency_summary(live: Server) -> None:
    rows = {row["name"]: row for row in live.get("/admin/endpoints").json()}
    latency = rows["sleepy"]["latency"]
    assert latency["jobs"] == 4 and latency["window_s"] == 3600
    assert 0.4 <= latency["execution_p95_s"] < 1.4
    assert latency["delay_p50_s"] <= latency["delay_p95_s"]
    assert rows["quiet"]["latency"]["delay_p95_s"] is None


@pytest.mark.parametrize("window", ["abc", "0", "-5", "nan", "inf", "1e12", ""])
def test_a_bad_window_is_a_400_naming_it(live: Server, window: str) -> None:
    response = live.get("/admin/endpoints/sleepy/metrics", params={"window": window})
    assert response.status_code == 400
    assert "window" in response.json()["error"] and repr(window) in response.json()["error"]


def test_an_unknown_endpoint_is_a_404(live: Server) -> None:
    response = live.get("/admin/endpoints/nope/metrics")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


def test_prometheus_metrics_have_the_endpoint_series(live: Server) -> None:
    found = samples(live)
    sleepy = (("endpoint", "sleepy"),)

    def get(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted({"endpoint": "sleepy", **labels}.items())))]

    assert get("runq_jobs_ended_total", status="completed") == 4
    assert get("runq_jobs_ended_total", status="failed") == 0
    assert get("runq_jobs_queued") == 0 and get("runq_jobs_in_progress") == 0
    assert get("runq_job_execution_seconds_count") == 4
    assert get("runq_job_delay_seconds_count") == 4
    assert get("runq_job_execution_seconds_sum") >= sum(SLEEPS)
    # 0.1 s of sleep never fits the 0.1 bucket, all four fit 2.5 s.
    assert get("runq_job_execution_seconds_bucket", le="0.1") == 0
    assert get("runq_job_execution_seconds_bucket", le="2.5") == 4
    assert get("runq_job_execution_seconds_bucket", le="+Inf") == 4
    assert get("runq_cold_starts_total") == 1 and get("runq_worker_revivals_total") == 0
    assert get("runq_worker_seconds_total", phase="running") >= sum(SLEEPS) - 0.05
    assert ("runq_worker_cost_usd_total", sleepy) in found
    states = {labels: v for (name, labels), v in found.items() if name == "runq_workers"}
    assert sum(v for labels, v in states.items() if ("endpoint", "sleepy") in labels) == 1
    # An endpoint without jobs has its gauges and counters, at zero.
    assert found[("runq_jobs_ended_total", (("endpoint", "quiet"), ("status", "completed")))] == 0


def test_a_scraper_asking_for_openmetrics_gets_it(live: Server) -> None:
    headers = {**live.headers, "Accept": OPENMETRICS}
    response = httpx.get(f"{live.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    assert 'runq_jobs_ended_total{endpoint="sleepy",status="completed"} 4.0' in response.text


def test_counters_do_not_go_down_between_scrapes(live: Server) -> None:
    first, second = samples(live), samples(live)
    for key, value in first.items():
        if key[0].endswith(("_total", "_count", "_sum", "_bucket")):
            assert second[key] >= value, key


def test_metrics_need_an_admin_key(live: Server) -> None:
    assert httpx.get(f"{live.url}/metrics", timeout=10).status_code == 401
    bad = httpx.get(f"{live.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401
    created = live.post("/admin/keys", json={"scopes": ["invoke:sleepy"]})
    assert created.status_code == 200, created.text
    client = {"Authorization": f"Bearer {created.json()['key']}"}
    assert httpx.get(f"{live.url}/metrics", headers=client, timeout=10).status_code == 403
    assert httpx.get(f"{live.url}/admin/endpoints/sleepy/metrics", timeout=10).status_code == 401


def runq(live: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env: dict[str, Any] = {**os.environ, "RUNQ_URL": live.url, "RUNQ_API_KEY": live.key}
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "COLUMNS": "200"},
    )


def test_runq_metrics_prints_the_window_as_tables(live: Server) -> None:
    result = runq(live, "metrics", "sleepy", "--window", "600")
    assert result.returncode == 0, result.stderr
    assert "last 600 s: 4 jobs ended (4 completed" in result.stdout
    assert "execution" in result.stdout and "cold starts" in result.stdout

    listed = runq(live, "endpoints")
    assert listed.returncode == 0, listed.stderr
    assert "p95 delay s" in listed.stdout


def test_runq_metrics_of_an_unknown_endpoint_says_so(live: Server) -> None:
    result = runq(live, "metrics", "nope")
    assert result.returncode == 1
    assert "404" in result.stderr and "nope" in result.stderr
