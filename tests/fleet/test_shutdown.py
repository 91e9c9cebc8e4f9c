"""Graceful shutdown: on SIGTERM `runq serve` hands out no new job, lets running ones finish up
to shutdown_grace (their results still accepted), requeues the rest, stops workers, exits 0."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(120)


def sigterm_and_wait(server: Server, timeout: float = 30) -> tuple[int, float]:
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout)
    return code, time.monotonic() - started


def test_running_jobs_finish_queued_ones_wait_and_the_exit_is_0(server_factory: Any) -> None:
    server: Server = server_factory()
    server.settings = {"shutdown_grace": 20}
    server.add_endpoint("sleepy", "native_sleep.py")
    server.start()
    running = server.run("sleepy", {"input": {"seconds": 2}})
    server.wait_status("sleepy", running, {"IN_PROGRESS"})
    queued = server.run("sleepy", {"input": {"seconds": 0}})

    code, took = sigterm_and_wait(server)

    assert code == 0
    assert took >= 1.0  # it waited for the running job
    server.start()
    assert server.status("sleepy", running)["output"] == {"slept": 2}  # finished, not rerun
    # The queued job was not handed out while draining; it runs after the restart.
    assert server.wait_status("sleepy", queued, {"COMPLETED"})["output"] == {"slept": 0}


def test_a_job_still_running_after_the_grace_goes_back_to_the_queue(server_factory: Any) -> None:
    server: Server = server_factory()
    server.settings = {"shutdown_grace": 1}
    server.add_endpoint("sleepy", "native_sleep.py")
    server.start()
    job = server.run("sleepy", {"input": {"seconds": 4}})
    server.wait_status("sleepy", job, {"IN_PROGRESS"})

    code, _ = sigterm_and_wait(server)

    assert code == 0
    log = (server.root / "serve.log").read_text()
    assert "back in the queue" in log
    server.start()
    final = server.wait_status("sleepy", job, {"COMPLETED"})
    assert final["output"] == {"slept": 4}


def test_a_second_signal_skips_the_wait(server_factory: Any) -> None:
    server: Server = server_factory()
    server.settings = {"shutdown_grace": 60}
    server.add_endpoint("sleepy", "native_sleep.py")
    server.start()
    job = server.run("sleepy", {"input": {"seconds": 30}})
    server.wait_status("sleepy", job, {"IN_PROGRESS"})
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "running job(s) get up to" in (server.root / "serve.log").read_text())
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(20) == 0
