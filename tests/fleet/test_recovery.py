"""Nothing accepted is lost: control-plane crashes, worker crashes, stuck workers."""

from __future__ import annotations

import os
import signal

import pytest

from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(120)


def test_kill9_of_the_control_plane_after_run_loses_no_job(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory()
    server.add_endpoint("sleepy", "native_sleep.py")
    server.start()
    # The worker is busy, so the next jobs are only queued when the control plane dies.
    busy = server.run("sleepy", {"input": {"seconds": 3}})
    server.wait_status("sleepy", busy, {"IN_PROGRESS"})
    queued = [server.run("sleepy", {"input": {"seconds": 0}}) for _ in range(5)]
    server.kill9()
    server.start()
    for job_id in [busy, *queued]:
        assert (
            server.wait_status("sleepy", job_id, {"COMPLETED"}, timeout=40)["status"] == "COMPLETED"
        )


def test_kill9_of_a_worker_mid_job_retries_it_on_another_worker(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory()
    server.add_endpoint("sleepy", "native_sleep.py", workers=2)
    server.start()
    server.wait_workers("sleepy", 2)
    job_id = server.run("sleepy", {"input": {"seconds": 2}})
    running = server.wait_status("sleepy", job_id, {"IN_PROGRESS"})
    victim = next(w for w in server.workers("sleepy") if w["id"] == running["workerId"])
    os.kill(victim["pid"], signal.SIGKILL)
    final = server.wait_status("sleepy", job_id, {"COMPLETED", "FAILED"}, timeout=40)
    assert final["status"] == "COMPLETED"
    assert final["workerId"] != victim["id"]
    assert final["retries"] == 1
    assert server.health("sleepy")["jobs"]["retried"] == 1


def test_a_job_that_kills_every_worker_fails_after_its_retries(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory()
    server.add_endpoint("crashy", "native_crash.py", extra="[jobs]\nmax_retries = 1\n")
    server.start()
    job_id = server.run("crashy", {"input": {}})
    final = server.wait_status("crashy", job_id, {"FAILED", "COMPLETED"}, timeout=60)
    assert final["status"] == "FAILED"
    assert "gave up after 1 retries" in final["error"]


def test_runpod_sync_handler_past_its_timeout_is_killed_and_replaced(server_factory) -> None:  # type: ignore[no-untyped-def]
    # A sync runpod handler blocks the SDK's event loop, so job-stop cannot reach it: the
    # control plane must replace the worker once the grace period has passed (spec 2.6).
    server: Server = server_factory()
    server.add_endpoint("stuck", "runpod_sleep.py", extra='[jobs]\nexecution_timeout = "1s"\n')
    server.start()
    job_id = server.run("stuck", {"input": {"seconds": 60}})
    first = server.wait_status("stuck", job_id, {"IN_PROGRESS"})["workerId"]
    assert server.wait_status("stuck", job_id, {"TIMED_OUT"}, timeout=20)["status"] == "TIMED_OUT"
    wait_until(
        lambda: any(w["id"] != first and w["state"] == "idle" for w in server.workers("stuck")),
        timeout=40,
    )
    reply = server.post("/v2/stuck/runsync", json={"input": {"seconds": 0}}, timeout=60)
    assert reply.json()["status"] == "COMPLETED"
    assert server.status("stuck", job_id)["status"] == "TIMED_OUT"


def test_sigterm_stops_every_worker_process(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory()
    server.add_endpoint("echo", "runpod_echo.py", workers=2)
    server.start()
    server.wait_workers("echo", 2)
    pids = [w["pid"] for w in server.workers("echo")]
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 0

    def gone() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in pids)

    wait_until(gone, timeout=10)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False
