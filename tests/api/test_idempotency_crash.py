"""A /run whose answer a crash cut off: the retry under the same Idempotency-Key gets the job
the first try made, after a restart, and no second job exists.

To die exactly between the commit and the answer, the first `runq serve` runs with the test-only
RUNQ_TEST_CRASH_AFTER_ENQUEUE=1 (runq.api.idempotency): it SIGKILLs itself once a job is
committed, before it answers.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.timeout(120)


def jobs_total(server: Server, endpoint: str) -> int:
    jobs = server.health(endpoint)["jobs"]
    return int(jobs["inQueue"] + jobs["inProgress"] + jobs["completed"] + jobs["failed"])


def test_a_retry_after_a_kill9_between_commit_and_answer_gets_the_same_job(
    server_factory,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: Server = server_factory()
    server.add_endpoint("echo", "native_echo.py")
    monkeypatch.setenv("RUNQ_TEST_CRASH_AFTER_ENQUEUE", "1")
    server.start(wait_workers=False)
    key = {**server.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"input": {"order": 42}}

    with pytest.raises(httpx.TransportError):  # the server died before answering
        server.post("/v2/echo/run", json=body, headers=key)
    assert server.process is not None and server.process.wait(10) == -9

    monkeypatch.delenv("RUNQ_TEST_CRASH_AFTER_ENQUEUE")
    server.start()
    assert jobs_total(server, "echo") == 1  # the cut-off /run was committed
    retry = server.post("/v2/echo/run", json=body, headers=key)

    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    job_id = retry.json()["id"]
    final = server.wait_status("echo", job_id, {"COMPLETED"})
    assert final["output"] == {"echo": {"order": 42}}
    assert jobs_total(server, "echo") == 1
