"""A /run whose answer a crash cut off: the retry under the same Idempotency-Key gets the job
the first try made, after a restart, and no second job exists. By hand, by `runq run` and by
`runq bench`'s load generator, which send a key and retry under it.

To die exactly between the commit and the answer, the first `runq serve` runs with the test-only
RUNQ_TEST_CRASH_AFTER_ENQUEUE=1 (runq.api.idempotency): it SIGKILLs itself once a job is
committed, before it answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx
import pytest

from runq.bench.load import run_load
from tests.conftest import Server

pytestmark = pytest.mark.timeout(120)


def jobs_total(server: Server, endpoint: str) -> int:
    jobs = server.health(endpoint)["jobs"]
    return int(jobs["inQueue"] + jobs["inProgress"] + jobs["completed"] + jobs["failed"])


def crash_on_first_submission(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    server.add_endpoint("echo", "native_echo.py")
    monkeypatch.setenv("RUNQ_TEST_CRASH_AFTER_ENQUEUE", "1")
    server.start(wait_workers=False)
    monkeypatch.delenv("RUNQ_TEST_CRASH_AFTER_ENQUEUE")  # read at its start: a restart is sane
    return server


def died_by_kill9(server: Server) -> bool:
    assert server.process is not None
    return server.process.wait(30) == -9


def test_a_retry_after_a_kill9_between_commit_and_answer_gets_the_same_job(
    server_factory: Callable[[], Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = crash_on_first_submission(server_factory(), monkeypatch)
    key = {**server.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"input": {"order": 42}}

    with pytest.raises(httpx.TransportError):  # the server died before answering
        server.post("/v2/echo/run", json=body, headers=key)
    assert died_by_kill9(server)

    server.start()
    assert jobs_total(server, "echo") == 1  # the cut-off /run was committed
    retry = server.post("/v2/echo/run", json=body, headers=key)

    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    job_id = retry.json()["id"]
    final = server.wait_status("echo", job_id, {"COMPLETED"})
    assert final["output"] == {"echo": {"order": 42}}
    assert jobs_total(server, "echo") == 1


def test_runq_run_retries_a_lost_submission_under_its_key(
    server_factory: Callable[[], Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = crash_on_first_submission(server_factory(), monkeypatch)
    env = {**os.environ, "RUNQ_URL": server.url, "RUNQ_API_KEY": server.key}
    cli = subprocess.Popen(
        [sys.executable, "-m", "runq.cli", "run", "echo", '{"order": 7}', "--retry-for", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert died_by_kill9(server)  # on the CLI's first try
        server.start()
        out, errors = cli.communicate(timeout=60)
    finally:
        cli.kill()
        cli.wait()

    assert cli.returncode == 0, errors
    assert "trying again" in errors
    job_id = json.loads(out)["id"]
    assert server.wait_status("echo", job_id, {"COMPLETED"})["output"] == {"echo": {"order": 7}}
    assert jobs_total(server, "echo") == 1

    # A key of one's own: the same job for every run under it.
    named = [
        json.loads(
            subprocess.run(
                [sys.executable, "-m", "runq.cli", "run", "echo", "8"],
                env={**env, "RUNQ_IDEMPOTENCY_KEY": "my-order-8"},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )["id"]
        for _ in range(2)
    ]
    assert named[0] == named[1] != job_id
    assert jobs_total(server, "echo") == 2


async def test_the_bench_load_generator_retries_a_lost_submission_under_its_key(
    server_factory: Callable[[], Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = crash_on_first_submission(server_factory(), monkeypatch)
    load = asyncio.create_task(
        run_load(server.url, server.key, "echo", (0.0,), {"order": 9}, submit_retry_s=60)
    )

    assert await asyncio.to_thread(died_by_kill9, server)
    await asyncio.to_thread(server.start)
    result = await asyncio.wait_for(load, 60)

    [job] = result.jobs
    assert (job.status, job.error) == ("COMPLETED", None)
    assert job.id == server.status("echo", str(job.id))["id"]
    assert jobs_total(server, "echo") == 1
