"""The official `runpod` package as client, against workers written with the runpod SDK and
with runq.worker. Nothing here is runq-specific on the client side."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import runpod

from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(120)

SDKS = {"runpod": "runpod_", "native": "native_"}


@pytest.fixture(params=sorted(SDKS), scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    from tests.conftest import free_port

    prefix = SDKS[request.param]
    server = Server(root=tmp_path_factory.mktemp(request.param), port=free_port())
    server.add_endpoint("echo", f"{prefix}echo.py")
    server.add_endpoint("sleepy", f"{prefix}sleep.py")
    server.add_endpoint("streamer", f"{prefix}stream.py")
    server.start()
    runpod.api_key = server.key
    runpod.endpoint_url_base = f"{server.url}/v2"
    try:
        yield server
    finally:
        server.stop()


def test_run_sync_returns_the_output(live: Server) -> None:
    assert runpod.Endpoint("echo").run_sync({"text": "hi"}) == {"echo": {"text": "hi"}}


def test_run_then_status_and_output(live: Server) -> None:
    job = runpod.Endpoint("echo").run({"input": {"n": 1}})
    assert job.output(timeout=30) == {"echo": {"n": 1}}
    assert job.status() == "COMPLETED"


def test_run_sync_past_the_servers_wait_polls_to_the_end(live: Server) -> None:
    # The SDK gets a non-final reply with an id, then polls /status every second.
    endpoint = runpod.Endpoint("sleepy")
    assert endpoint.run_sync({"seconds": 0.2}, timeout=60) == {"slept": 0.2}


def test_stream_yields_each_chunk_once(live: Server) -> None:
    job = runpod.Endpoint("streamer").run({"n": 4})
    assert list(job.stream()) == [{"i": i} for i in range(4)]


def test_cancel_a_running_job(live: Server) -> None:
    job = runpod.Endpoint("sleepy").run({"seconds": 2})
    wait_until(lambda: job.status() == "IN_PROGRESS", timeout=30)
    job.cancel()
    assert job.status() == "CANCELLED"


def test_health_and_purge(live: Server) -> None:
    endpoint = runpod.Endpoint("echo")
    assert "jobs" in endpoint.health()
    assert endpoint.purge_queue()["status"] == "completed"
