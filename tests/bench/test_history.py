"""An endpoint's recorded history: cold starts and revivals from worker transitions, job times
from `/admin/endpoints/{name}/jobs`, and `runq advise --endpoint` fitting them live."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from runq.bench.dists import Constant, LogNormal
from runq.bench.history import HistoryUnavailable, cold_starts, fetch_history, from_payloads
from runq.core.spec import ScalingSection
from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(60)


def steps(*pairs: tuple[float, str]) -> list[dict[str, Any]]:
    return [{"at": at, "state": state, "reason": ""} for at, state in pairs]


@pytest.mark.parametrize(
    ("transitions", "expected"),
    [
        pytest.param(
            steps((0, "initializing"), (4, "idle"), (9, "running"), (10, "idle")),
            ([4.0], 0, []),
            id="one cold start of 4 s",
        ),
        pytest.param(
            steps((0, "throttled"), (5, "initializing"), (8, "running")),
            ([3.0], 0, []),
            id="waiting for a GPU is not part of the cold start (5 -> 8)",
        ),
        pytest.param(
            steps((0, "initializing"), (2, "idle"), (7, "parked"), (20, "idle"), (30, "parked"),
                  (40, "idle")),
            ([2.0], 2, []),
            id="revivals straight to idle are counted, with no time",
        ),
        pytest.param(
            steps((0, "initializing"), (2, "idle"), (7, "parked"), (20, "initializing"),
                  (20.5, "idle")),
            ([2.0], 1, [0.5]),
            id="a revival through initializing is timed, and is no cold start",
        ),
        pytest.param(
            steps((0, "initializing"), (420, "unhealthy"), (421, "terminated")),
            ([], 0, []),
            id="never ready: no cold start sample",
        ),
    ],
)  # fmt: skip
def test_cold_starts_and_revivals_from_transitions(
    transitions: list[dict[str, Any]], expected: tuple[list[float], int, list[float]]
) -> None:
    assert cold_starts(transitions) == expected


def test_history_from_payloads_fits_and_replays() -> None:
    workers = [{"transitions": steps((0, "initializing"), (6, "idle"))}]
    body = {
        "endpoint": "demo",
        "scaling": {"active_workers": 1, "max_workers": 4, "a_future_field": True},
        "jobs": [  # newest first, as the server answers
            {"created_at": 110.0, "delay_s": 0.0, "execution_s": 2.0},
            {"created_at": 100.0, "delay_s": 6.0, "execution_s": 8.0},
        ],
    }
    history = from_payloads(workers, body)
    assert history.scaling == ScalingSection(active_workers=1, max_workers=4)
    assert history.cold_start() == Constant(6.0)
    assert isinstance(history.execution(), LogNormal)  # 2 samples: a lognormal
    trace = history.trace()
    assert (trace.arrivals, trace.service_s) == ((0.0, 10.0), (8.0, 2.0))


ENDPOINT = """
name = "sleepy"
[worker]
command = ["{python}", "{handlers}/native_sleep.py"]
[scaling]
active_workers = 0
max_workers = 1
idle_timeout = "1s"
flashboot = true
"""


def test_live_history_and_advise_fitted_to_it(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint_text("sleepy", ENDPOINT)
    server.start(wait_workers=False)
    first = server.run("sleepy", {"input": {"seconds": 0.3}})
    server.wait_status("sleepy", first, {"COMPLETED"})
    # Parked after its idle second: the next job revives it.
    wait_until(lambda: any(w["state"] == "parked" for w in server.workers("sleepy")))
    ids = [server.run("sleepy", {"input": {"seconds": 0.2}}) for _ in range(3)]
    for job_id in ids:
        server.wait_status("sleepy", job_id, {"COMPLETED"})

    history = fetch_history(server.url, server.key, "sleepy")
    assert len(history.cold_starts_s) == 1 and 0 < history.cold_starts_s[0] < 30
    assert history.revivals >= 1
    assert len(history.jobs) == 4
    assert sorted(history.executions_s)[-1] == pytest.approx(0.3, abs=0.2)
    assert history.scaling.max_workers == 1 and history.scaling.flashboot

    newest = server.get("/admin/endpoints/sleepy/jobs?limit=2").json()["jobs"]
    assert [job["id"] for job in newest] == ids[:0:-1]  # the two latest, newest first
    assert server.get("/admin/endpoints/sleepy/jobs?limit=two").status_code == 400
    with pytest.raises(HistoryUnavailable, match="not deployed"):
        fetch_history(server.url, server.key, "nope")

    result = subprocess.run(
        [sys.executable, "-m", "runq.cli", "advise", "--endpoint", "sleepy", "--budget", "1",
         "--processes", "1", "--target-p95", "1"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "RUNQ_URL": server.url, "RUNQ_API_KEY": server.key, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trace sleepy-history: 4 arrivals" in out  # its recorded jobs, replayed
    assert "cold start: " in out and "(fitted to history)" in out
    assert "recorded: 4 jobs" in out and "1 cold starts" in out
    assert "current configuration from endpoint sleepy" in out
