"""Job-done bodies as workers send them, and the job object as clients and webhooks see it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runq.core.job import Job, JobStatus, WorkerResult, parse_worker_result

# --- parse_worker_result (spec 2.7) ---------------------------------------------------------

RESULTS = [
    pytest.param(
        {"status": "IN_PROGRESS", "output": {"pct": 50}},
        WorkerResult(
            is_progress=True, has_output=True, output={"pct": 50}, error=None, stop_pod=False
        ),
        id="a progress body is progress with its output",
    ),
    pytest.param(
        {"status": "IN_PROGRESS", "output": "half", "error": "ignored"},
        WorkerResult(True, True, "half", None, False),
        id="an error inside a progress body is ignored",
    ),
    pytest.param(
        {"error": "boom"},
        WorkerResult(False, False, None, "boom", False),
        id="a string error fails the job as it is",
    ),
    pytest.param(
        {"output": {"partial": 1}, "error": "boom"},
        WorkerResult(False, True, {"partial": 1}, "boom", False),
        id="output sent next to an error is kept",
    ),
    pytest.param(
        {"error": ""},
        WorkerResult(False, False, None, "", False),
        id="an empty error string still fails the job",
    ),
    pytest.param(
        {"output": 1, "error": None},
        WorkerResult(False, True, 1, None, False),
        id="a null error is no error",
    ),
    pytest.param(
        {"output": {"a": 1}, "stopPod": True},
        WorkerResult(False, True, {"a": 1}, None, True),
        id="stopPod asks for a fresh worker",
    ),
    pytest.param(
        {"output": None},
        WorkerResult(False, True, None, None, False),
        id="an explicit null output is output",
    ),
    pytest.param(
        {},
        WorkerResult(False, False, None, None, False),
        id="an empty body completes without output",
    ),
    pytest.param(
        "just text",
        WorkerResult(False, True, "just text", None, False),
        id="a bare string is the output",
    ),
    pytest.param(
        [1, 2],
        WorkerResult(False, True, [1, 2], None, False),
        id="a bare list is the output",
    ),
    pytest.param(
        None,
        WorkerResult(False, True, None, None, False),
        id="a bare null is a null output",
    ),
]


@pytest.mark.parametrize(("body", "expected"), RESULTS)
def test_parse_worker_result(body: Any, expected: WorkerResult) -> None:
    assert parse_worker_result(body) == expected


@pytest.mark.parametrize(
    "error",
    [
        pytest.param({"error_type": "ValueError", "error_message": "bad"}, id="a dict"),
        pytest.param(["a", 1], id="a list"),
        pytest.param(0, id="the number zero"),
        pytest.param(False, id="false"),
    ],
)
def test_a_non_string_error_fails_the_job_as_json(error: Any) -> None:
    result = parse_worker_result({"error": error})

    assert result.status is JobStatus.FAILED
    assert isinstance(result.error, str)
    assert json.loads(result.error) == error


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"output": 1}, JobStatus.COMPLETED, id="output alone completes"),
        pytest.param({}, JobStatus.COMPLETED, id="an empty body completes"),
        pytest.param({"error": "x"}, JobStatus.FAILED, id="an error fails"),
        pytest.param({"output": 1, "error": "x"}, JobStatus.FAILED, id="output and error fails"),
    ],
)
def test_the_status_a_result_gives_the_job(body: Any, status: JobStatus) -> None:
    assert parse_worker_result(body).status is status


# --- Job.to_wire (spec 1.3) -----------------------------------------------------------------


def make_job(**overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "id": "job-1",
        "endpoint": "echo",
        "status": JobStatus.COMPLETED,
        "input": {"prompt": "hi"},
        "created_at": 1000.0,
        "started_at": 1002.0,
        "finished_at": 1005.5,
        "worker_id": "w1",
        "has_output": True,
        "output": {"text": "hello"},
    }
    return Job(**{**fields, **overrides})


WIRE = [
    pytest.param(
        make_job(),
        None,
        {
            "id": "job-1",
            "status": "COMPLETED",
            "delayTime": 2000,
            "executionTime": 3500,
            "output": {"text": "hello"},
            "workerId": "w1",
        },
        id="a completed job in RunPod's camelCase",
    ),
    pytest.param(
        make_job(has_output=False, output=None),
        None,
        {
            "id": "job-1",
            "status": "COMPLETED",
            "delayTime": 2000,
            "executionTime": 3500,
            "workerId": "w1",
        },
        id="output is left out when the worker sent none",
    ),
    pytest.param(
        make_job(output=None),
        None,
        {
            "id": "job-1",
            "status": "COMPLETED",
            "delayTime": 2000,
            "executionTime": 3500,
            "output": None,
            "workerId": "w1",
        },
        id="a null output the worker sent is kept",
    ),
    pytest.param(
        make_job(status=JobStatus.FAILED, output={"partial": 1}, error="boom"),
        None,
        {
            "id": "job-1",
            "status": "FAILED",
            "delayTime": 2000,
            "executionTime": 3500,
            "output": {"partial": 1},
            "error": "boom",
            "workerId": "w1",
        },
        id="a failed job shows its error beside its output",
    ),
    pytest.param(
        make_job(
            status=JobStatus.IN_QUEUE,
            started_at=None,
            finished_at=None,
            worker_id=None,
            has_output=False,
            output=None,
        ),
        None,
        {"id": "job-1", "status": "IN_QUEUE"},
        id="a queued job without a clock shows only id and status",
    ),
    pytest.param(
        make_job(
            status=JobStatus.IN_QUEUE,
            started_at=None,
            finished_at=None,
            worker_id=None,
            has_output=False,
            output=None,
        ),
        1001.25,  # 1001.25 - 1000 = 1.25 s waited so far
        {"id": "job-1", "status": "IN_QUEUE", "delayTime": 1250},
        id="a queued job shows its delay so far",
    ),
    pytest.param(
        make_job(status=JobStatus.IN_PROGRESS, finished_at=None, has_output=False, output=None),
        1010.0,  # 1002 - 1000 = 2 s delay; 1010 - 1002 = 8 s running so far
        {
            "id": "job-1",
            "status": "IN_PROGRESS",
            "delayTime": 2000,
            "executionTime": 8000,
            "workerId": "w1",
        },
        id="a running job shows its execution time so far",
    ),
    pytest.param(
        make_job(retries=2),
        None,
        {
            "id": "job-1",
            "status": "COMPLETED",
            "delayTime": 2000,
            "executionTime": 3500,
            "output": {"text": "hello"},
            "workerId": "w1",
            "retries": 2,
        },
        id="a job moved off lost workers shows its retries",
    ),
]


@pytest.mark.parametrize(("job", "now", "wire"), WIRE)
def test_to_wire(job: Job, now: float | None, wire: dict[str, Any]) -> None:
    assert job.to_wire(now) == wire


@pytest.mark.parametrize(
    ("started", "finished"),
    [
        pytest.param(1000.0004, 1000.0011, id="sub-millisecond times"),
        pytest.param(1001.2345, 1003.9876, id="fractional milliseconds"),
        pytest.param(999.0, 998.0, id="a clock that stepped backwards"),
    ],
)
def test_wire_times_are_non_negative_integers(started: float, finished: float) -> None:
    wire = make_job(started_at=started, finished_at=finished).to_wire()

    for key in ("delayTime", "executionTime"):
        assert type(wire[key]) is int
        assert wire[key] >= 0
    assert json.loads(json.dumps(wire)) == wire


@pytest.mark.parametrize("status", list(JobStatus), ids=lambda s: f"a {s.value} job")
def test_the_wire_status_is_runpods_and_never_running(status: JobStatus) -> None:
    wire = make_job(status=status).to_wire(now=2000.0)

    assert wire["status"] in {
        "IN_QUEUE",
        "IN_PROGRESS",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMED_OUT",
    }
    assert wire["status"] != "RUNNING"


def test_the_webhook_envelope_adds_input_and_webhook_to_the_job() -> None:
    job = make_job(webhook="http://hooks.test/done")

    assert job.to_webhook() == {**job.to_wire(), "input": {"prompt": "hi"}, "webhook": job.webhook}
