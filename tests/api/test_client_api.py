"""The client API against a live `runq serve` with real native workers."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[[], Server]) -> Server:
    """One server for the file: each test uses jobs of its own and leaves none queued."""
    s = module_server_factory()
    s.add_endpoint("echo", "native_echo.py")
    s.add_endpoint("sleepy", "native_sleep.py", extra='[jobs]\nexecution_timeout = "2s"\n')
    s.add_endpoint("streamer", "native_stream.py")
    s.add_endpoint("broken", "native_fail.py")
    return s.start()


def test_runsync_returns_the_handlers_output_with_timings(server: Server) -> None:
    reply = server.post("/v2/echo/runsync", json={"input": {"text": "hi"}})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["status"] == "COMPLETED"
    assert body["output"] == {"echo": {"text": "hi"}}
    assert body["id"].startswith("sync-")
    assert isinstance(body["delayTime"], int) and isinstance(body["executionTime"], int)
    assert body["workerId"].startswith("echo-")


def test_curl_style_form_content_type_is_parsed_as_json(server: Server) -> None:
    headers = {**server.headers, "Content-Type": "application/x-www-form-urlencoded"}
    reply = server.post("/v2/echo/runsync", content=b'{"input":{"text":"hi"}}', headers=headers)
    assert reply.json()["output"] == {"echo": {"text": "hi"}}


def test_run_then_status_until_completed(server: Server) -> None:
    job_id = server.run("echo", {"input": [1, 2, 3]})
    final = server.wait_status("echo", job_id, {"COMPLETED"})
    assert final["output"] == {"echo": [1, 2, 3]}


def test_runsync_that_outlasts_its_wait_returns_the_id_and_keeps_running(server: Server) -> None:
    reply = server.post("/v2/sleepy/runsync?wait=1000", json={"input": {"seconds": 1.5}})
    body = reply.json()
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS")
    final = server.wait_status("sleepy", body["id"], {"COMPLETED"})
    assert final["output"] == {"slept": 1.5}


def test_status_sync_waits_for_the_end(server: Server) -> None:
    job_id = server.run("sleepy", {"input": {"seconds": 0.5}})
    body = server.get(f"/v2/sleepy/status-sync/{job_id}?wait=20000").json()
    assert body["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/echo/run", b"{not json", 400, "malformed JSON"),
        ("/v2/echo/run", b'{"inptu": 1}', 400, "'input'"),
        ("/v2/echo/run", b"[1, 2]", 400, "JSON object"),
        ("/v2/echo/run", b'{"input": 1, "policy": {"ttl": 5}}', 400, "policy.ttl"),
        ("/v2/echo/run", b'{"input": 1, "webhook": "ftp://x"}', 400, "webhook"),
        ("/v2/nope/run", b'{"input": 1}', 404, "endpoint 'nope'"),
    ],
    ids=[
        "malformed-json",
        "missing-input",
        "not-an-object",
        "ttl-too-short",
        "bad-webhook",
        "unknown-endpoint",
    ],
)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    server: Server, path: str, body: bytes, status: int, message: str
) -> None:
    before = server.health("echo")["jobs"]
    reply = server.post(path, content=body)
    assert reply.status_code == status
    assert message in reply.json()["error"]
    assert server.health("echo")["jobs"] == before


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "wrong"], ids=["none", "bad-bearer", "bad-raw"]
)
def test_requests_without_a_valid_key_get_401_and_change_nothing(
    server: Server, header: str | None
) -> None:
    before = server.health("echo")["jobs"]
    headers = {} if header is None else {"Authorization": header}
    reply = httpx.post(f"{server.url}/v2/echo/run", json={"input": 1}, headers=headers)
    assert reply.status_code == 401
    assert "API key" in reply.json()["error"]
    assert server.health("echo")["jobs"] == before


def test_raw_key_without_bearer_is_accepted(server: Server) -> None:
    reply = server.post("/v2/echo/run", json={"input": 1}, headers={"Authorization": server.key})
    assert reply.status_code == 200


def test_unknown_job_is_404(server: Server) -> None:
    reply = server.get("/v2/echo/status/no-such-job")
    assert reply.status_code == 404
    assert "no-such-job" in reply.json()["error"]


def test_handler_exception_fails_the_job_with_the_sdk_error_string(server: Server) -> None:
    body = server.post("/v2/broken/runsync", json={"input": {}}).json()
    assert body["status"] == "FAILED"
    assert json.loads(body["error"])["error_message"] == "boom"


def test_stream_drains_chunks_then_ends_with_an_empty_final_reply(server: Server) -> None:
    job_id = server.run("streamer", {"input": {"n": 3}})
    seen: list[object] = []

    def drained() -> bool:
        body = server.get(f"/v2/streamer/stream/{job_id}").json()
        assert "stream" in body
        seen.extend(item["output"] for item in body["stream"])
        return bool(body["status"] == "COMPLETED" and body["stream"] == [])

    wait_until(drained, timeout=30)
    assert seen == [{"i": 0}, {"i": 1}, {"i": 2}]
    final = server.status("streamer", job_id)
    assert final["output"] == [{"i": 0}, {"i": 1}, {"i": 2}]  # return_aggregate_stream


def test_execution_timeout_ends_the_job_timed_out_and_the_worker_recovers(server: Server) -> None:
    job_id = server.run("sleepy", {"input": {"seconds": 30}})
    final = server.wait_status("sleepy", job_id, {"TIMED_OUT"}, timeout=20)
    assert "execution timeout" in final["error"]
    # The stuck worker is stopped or replaced; the endpoint serves again.
    reply = server.post("/v2/sleepy/runsync", json={"input": {"seconds": 0}}, timeout=60)
    assert reply.json()["status"] == "COMPLETED"


def test_policy_execution_timeout_overrides_the_endpoint(server: Server) -> None:
    job_id = server.run("echo", {"input": 1, "policy": {"executionTimeout": 5000}})
    assert server.wait_status("echo", job_id, {"COMPLETED"})["status"] == "COMPLETED"


def test_ttl_expired_while_queued_ends_timed_out_and_never_runs(server: Server) -> None:
    blocker = server.run("sleepy", {"input": {"seconds": 1.9}})
    server.wait_status("sleepy", blocker, {"IN_PROGRESS"})
    # One worker, busy for ~2 s; this job's ttl lapses in the queue... but ttl has a 10 s floor,
    # so make the blocker outlast it with back-to-back jobs.
    blockers = [server.run("sleepy", {"input": {"seconds": 1.9}}) for _ in range(6)]
    job_id = server.run("sleepy", {"input": {"seconds": 0}, "policy": {"ttl": 10_000}})
    final = server.wait_status("sleepy", job_id, {"TIMED_OUT", "COMPLETED"}, timeout=30)
    assert final["status"] == "TIMED_OUT"
    assert "ttl" in final["error"]
    assert "executionTime" not in final  # it never started
    server.post("/v2/sleepy/purge-queue")
    del blockers


def test_cancel_a_queued_job(server: Server) -> None:
    blocker = server.run("sleepy", {"input": {"seconds": 1.5}})
    server.wait_status("sleepy", blocker, {"IN_PROGRESS"})
    job_id = server.run("sleepy", {"input": {"seconds": 0}})
    reply = server.post(f"/v2/sleepy/cancel/{job_id}")
    assert reply.json()["status"] == "CANCELLED"
    server.wait_status("sleepy", blocker, {"COMPLETED"})
    # Give the worker a chance to take it if it were still queued: it must stay cancelled.
    server.post("/v2/sleepy/runsync", json={"input": {"seconds": 0}})
    assert server.status("sleepy", job_id)["status"] == "CANCELLED"


def test_cancel_a_running_job_answers_at_once(server: Server) -> None:
    job_id = server.run("sleepy", {"input": {"seconds": 1.5}})
    server.wait_status("sleepy", job_id, {"IN_PROGRESS"})
    reply = server.post(f"/v2/sleepy/cancel/{job_id}", timeout=3)
    assert reply.json()["status"] == "CANCELLED"
    # A late result from the sync handler must not flip it back.
    reply = server.post("/v2/sleepy/runsync", json={"input": {"seconds": 0}}, timeout=60)
    assert reply.json()["status"] == "COMPLETED"
    assert server.status("sleepy", job_id)["status"] == "CANCELLED"


def test_retry_requeues_a_failed_job_with_the_same_id(server: Server) -> None:
    body = server.post("/v2/broken/runsync", json={"input": {}}).json()
    assert body["status"] == "FAILED"
    reply = server.post(f"/v2/broken/retry/{body['id']}")
    assert reply.json() == {"id": body["id"], "status": "IN_QUEUE"}
    assert server.wait_status("broken", body["id"], {"FAILED"})["status"] == "FAILED"


def test_retry_of_a_completed_job_is_refused(server: Server) -> None:
    body = server.post("/v2/echo/runsync", json={"input": {}}).json()
    reply = server.post(f"/v2/echo/retry/{body['id']}")
    assert reply.status_code == 400
    assert "COMPLETED" in reply.json()["error"]


def test_purge_queue_removes_only_queued_jobs(server: Server) -> None:
    running = server.run("sleepy", {"input": {"seconds": 1}})
    server.wait_status("sleepy", running, {"IN_PROGRESS"})
    queued = [server.run("sleepy", {"input": {"seconds": 0}}) for _ in range(3)]
    reply = server.post("/v2/sleepy/purge-queue").json()
    assert reply == {"removed": 3, "status": "completed"}
    assert server.wait_status("sleepy", running, {"COMPLETED"})["status"] == "COMPLETED"
    assert {server.status("sleepy", j)["status"] for j in queued} == {"CANCELLED"}


def test_health_counts_jobs_and_workers(server: Server) -> None:
    server.post("/v2/echo/runsync", json={"input": 1})
    health = server.health("echo")
    assert health["jobs"]["completed"] >= 1
    assert health["workers"]["idle"] + health["workers"]["running"] == 1


def test_openapi_docs_are_served(server: Server) -> None:
    assert server.get("/docs").status_code == 200
    schema = server.get("/openapi.json").json()
    assert "/v2/{endpoint}/run" in schema["paths"]
