"""Endpoint lifecycle through a live `runq serve`: undeploy (at once and drained), active/max
workers that take effect at once, and a rolling redeploy under steady load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HANDLERS, Server, endpoint_toml, wait_until

pytestmark = pytest.mark.timeout(150)


def runq(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNQ_URL": server.url, "RUNQ_API_KEY": server.key}
    return subprocess.run(
        [sys.executable, "-m", "runq.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def deployed(server: Server, name: str, text: str) -> Path:
    """Deploy `text` through the CLI (stored, not named on serve's command line)."""
    path = server.root / f"{name}.toml"
    path.write_text(text)
    result = runq(server, "deploy", str(path))
    assert result.returncode == 0, result.stderr
    return path


def live_workers(server: Server, name: str) -> list[dict[str, Any]]:
    return [w for w in server.workers(name) if w["state"] != "terminated"]


def test_undeploy_cancels_jobs_stops_workers_refuses_new_jobs_and_survives_a_restart(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    server.start()
    deployed(server, "slow", endpoint_toml("slow", "native_sleep.py", workers=1))
    server.wait_workers("slow", 1)
    running = server.run("slow", {"input": {"seconds": 60}})
    server.wait_status("slow", running, {"IN_PROGRESS"})
    queued = server.run("slow", {"input": {"seconds": 60}})

    result = runq(server, "undeploy", "slow")

    assert result.returncode == 0, result.stderr
    assert "2 job(s) cancelled" in " ".join(result.stdout.split())
    refused = server.post("/v2/slow/run", json={"input": {"seconds": 1}})
    assert refused.status_code == 410
    assert "undeployed" in refused.json()["error"]
    for job in (running, queued):  # history stays readable
        assert server.status("slow", job)["status"] == "CANCELLED"
    wait_until(lambda: live_workers(server, "slow") == [], timeout=15)
    assert [row["name"] for row in server.get("/admin/endpoints").json()] == []

    server.stop()
    server.start()

    assert server.get("/admin/endpoints").json() == []
    again = server.post("/v2/slow/run", json={"input": {"seconds": 1}})
    assert again.status_code == 404
    assert "not deployed" in again.json()["error"]
    assert server.status("slow", queued)["status"] == "CANCELLED"
    assert live_workers(server, "slow") == []


def test_undeploy_with_drain_runs_the_queued_jobs_then_stops(server_factory: Any) -> None:
    server: Server = server_factory()
    server.start()
    deployed(server, "slow", endpoint_toml("slow", "native_sleep.py", workers=1))
    server.wait_workers("slow", 1)
    jobs = [server.run("slow", {"input": {"seconds": 2}}) for _ in range(3)]

    result = runq(server, "undeploy", "slow", "--drain")

    assert result.returncode == 0, result.stderr
    assert "finish first" in " ".join(result.stdout.split())
    refused = server.post("/v2/slow/run", json={"input": {"seconds": 1}})
    assert refused.status_code == 410
    assert "draining" in refused.json()["error"]
    (listed,) = server.get("/admin/endpoints").json()
    assert listed["draining"] is True
    for job in jobs:
        ended = server.wait_status("slow", job, {"COMPLETED", "CANCELLED", "FAILED"})
        assert ended["status"] == "COMPLETED"
    wait_until(lambda: live_workers(server, "slow") == [], timeout=15)
    gone = server.post("/v2/slow/run", json={"input": {"seconds": 1}})
    assert gone.status_code == 410
    assert "undeployed" in gone.json()["error"]


def test_undeploying_an_unknown_endpoint_exits_1_naming_it(server_factory: Any) -> None:
    server: Server = server_factory()
    server.start()
    result = runq(server, "undeploy", "nope")
    assert result.returncode == 1
    assert "nope" in result.stderr and "404" in result.stderr
    patched = httpx.patch(
        f"{server.url}/admin/endpoints/nope", json={"max_workers": 2}, headers=server.headers
    )
    assert patched.status_code == 404 and "nope" in patched.json()["error"]


def test_lowering_active_workers_releases_a_worker_within_2s(server_factory: Any) -> None:
    server: Server = server_factory()
    server.start()
    text = endpoint_toml("idle", "native_echo.py", workers=2, extra='idle_timeout = "120s"\n')
    deployed(server, "idle", text)
    server.wait_workers("idle", 2)

    lowered = httpx.patch(
        f"{server.url}/admin/endpoints/idle",
        json={"active_workers": 1},
        headers=server.headers,
        timeout=10,
    )

    assert lowered.status_code == 200, lowered.text
    wait_until(lambda: len(live_workers(server, "idle")) == 1, timeout=2)
    for bad, field in (
        ({"active_workers": "1"}, "active_workers"),
        ({"active_workers": 3}, "max workers"),  # more active than max
        ({"min_workers": 1}, "active_workers"),  # an unknown field: the message says what is
    ):
        refused = httpx.patch(
            f"{server.url}/admin/endpoints/idle", json=bad, headers=server.headers, timeout=10
        )
        assert refused.status_code == 400 and field in refused.json()["error"], refused.text
    assert len(live_workers(server, "idle")) == 1
    (kept,) = live_workers(server, "idle")
    assert kept["active"] is True

    # The dashboard's and CLI's route: to 0, the last (idle) worker goes too.
    zero = server.post(
        "/admin/endpoints/idle/workers", json={"active_workers": 0, "max_workers": 2}
    )
    assert zero.status_code == 200, zero.text
    wait_until(lambda: live_workers(server, "idle") == [], timeout=2)
    # Kept across a restart (the stored file was edited): no active worker comes back.
    server.stop()
    server.start(wait_workers=False)
    row = next(r for r in server.get("/admin/endpoints").json() if r["name"] == "idle")
    assert (row["active_workers"], row["max_workers"]) == (0, 2)


def test_lowering_max_workers_releases_idle_workers_first(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint("pool", "native_sleep.py", workers=3, extra='idle_timeout = "120s"\n')
    server.start()
    server.wait_workers("pool", 3)
    busy = server.run("pool", {"input": {"seconds": 5}})
    server.wait_status("pool", busy, {"IN_PROGRESS"})
    holder = server.get(f"/admin/jobs/{busy}").json()["workerId"]

    lowered = httpx.patch(
        f"{server.url}/admin/endpoints/pool",
        json={"active_workers": 1, "max_workers": 1},
        headers=server.headers,
        timeout=10,
    )

    assert lowered.status_code == 200, lowered.text
    wait_until(lambda: [w["id"] for w in live_workers(server, "pool")] == [holder], timeout=2)
    assert server.wait_status("pool", busy, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"


ROLL = """name = "roll"
[worker]
command = ["{python}", "{handler}"]
env = {{ VERSION = "{version}" }}
[scaling]
active_workers = 2
max_workers = 2
idle_timeout = "120s"
"""


def test_a_rolling_redeploy_under_steady_load_fails_no_job_and_keeps_active_workers_ready(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    server.start()
    fields = {"python": sys.executable, "handler": HANDLERS / "native_env.py"}
    path = deployed(server, "roll", ROLL.format(version="1", **fields))
    server.wait_workers("roll", 2)
    old = {w["id"] for w in live_workers(server, "roll")}
    stop = threading.Event()
    outcomes: list[tuple[str, str]] = []  # (status, worker id or what went wrong)
    lowest_ready: list[int] = []

    def load() -> None:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client:
            while not stop.is_set():
                reply = client.post("/v2/roll/runsync", json={"input": {"seconds": 0.2}})
                body = reply.json()
                status = body.get("status", f"HTTP {reply.status_code}")
                ran_on = body["output"]["worker"] if status == "COMPLETED" else str(body)
                outcomes.append((status, ran_on))

    def sample() -> None:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as client:
            while not stop.is_set():
                rows = client.get("/admin/workers?endpoint=roll").json()
                ready = [w for w in rows if w["state"] in ("idle", "running") and not w["draining"]]
                lowest_ready.append(len(ready))
                stop.wait(0.05)

    threads = [threading.Thread(target=load) for _ in range(3)] + [threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(outcomes) >= 5, timeout=30)
        path.write_text(ROLL.format(version="2", **fields))
        result = runq(server, "deploy", str(path))
        assert result.returncode == 0, result.stderr

        def rolled() -> bool:
            current = {w["id"] for w in live_workers(server, "roll")}
            return len(current) == 2 and not current & old

        wait_until(rolled, timeout=90, interval=0.2)
        done = len(outcomes)
        wait_until(lambda: len(outcomes) >= done + 5, timeout=30)  # the new workers serve
    finally:
        stop.set()
        for thread in threads:
            thread.join(70)
    failed = [detail for status, detail in outcomes if status != "COMPLETED"]
    assert failed == []
    assert min(lowest_ready) >= 2, lowest_ready
    new = {w["id"] for w in live_workers(server, "roll")}
    assert {ran_on for _, ran_on in outcomes[-3:]} <= new  # the last jobs ran on new workers
