"""runq's own scalers live: the scheduler feeds them the arrivals it has seen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Server, wait_until

ENDPOINT = """
name = "slo"
[worker]
command = ["{python}", "{handlers}/native_sleep.py"]
[scaling]
max_workers = 2
idle_timeout = "60s"
scaler = "slo"
p95_delay_target = "5s"
flashboot = true
"""


@pytest.mark.timeout(60)
def test_slo_parks_idle_workers_by_the_gaps_it_saw_not_the_60s_idle_timeout(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    server.add_endpoint_text("slo", ENDPOINT)
    server.start(wait_workers=False)

    # 12 jobs sent back to back: 11 gaps of milliseconds, so the pre-warm window (the 5th
    # percentile gap, less 10 %) is far under the 60 s idle timeout.
    ids = [server.run("slo", {"input": {"seconds": 0.1}}) for _ in range(12)]
    for job_id in ids:
        server.wait_status("slo", job_id, {"COMPLETED"}, timeout=30)

    workers = server.workers("slo")
    assert 1 <= len(workers) <= 2
    wait_until(
        lambda: {w["state"] for w in server.workers("slo")} == {"parked"}, timeout=15
    )  # with queue_delay they would stay idle (billed) for 60 s

    # A parked worker revives for the next job.
    job_id = server.run("slo", {"input": {"seconds": 0.1}})
    assert server.wait_status("slo", job_id, {"COMPLETED"}, timeout=15)["status"] == "COMPLETED"
