"""The OpenAI route's translation rules (runq.api.openai_wire), table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from runq.api.openai_wire import Answer, job_answer, job_input, sse_bytes
from runq.core.job import Job, JobStatus

VLLM_ERROR = {"message": "bad max_tokens", "type": "BadRequestError", "param": None, "code": 400}


def make_job(**overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "id": "job-1",
        "endpoint": "llm",
        "status": JobStatus.COMPLETED,
        "input": {},
        "created_at": 0.0,
        **overrides,
    }
    return Job(**fields)


def test_a_request_becomes_runpods_job_input() -> None:
    assert job_input("chat/completions", {"model": "m"}) == {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"model": "m"},
    }
    assert job_input("models", None) == {"openai_route": "/v1/models"}


ANSWERS = [
    pytest.param(
        make_job(output=[{"object": "list", "data": []}]),
        Answer(200, {"object": "list", "data": []}),
        id="the first item a generator yielded is the body",
    ),
    pytest.param(
        make_job(output={"id": "x"}), Answer(200, {"id": "x"}), id="a plain output is the body"
    ),
    pytest.param(
        make_job(output=[{"error": VLLM_ERROR}]),
        Answer(400, {"error": VLLM_ERROR}),
        id="vLLM's error object answers with its code",
    ),
    pytest.param(
        make_job(output=[{"object": "error", "message": "gone", "code": 404}]),
        Answer(404, {"error": {"object": "error", "message": "gone", "code": 404}}),
        id="the older flat error object answers with its code, in OpenAI's shape",
    ),
    pytest.param(
        make_job(output=[{"error": {"message": "odd", "code": 200}}]),
        Answer(400, {"error": {"message": "odd", "code": 200}}),
        id="an error object whose code is not an error status answers 400",
    ),
    pytest.param(
        make_job(status=JobStatus.FAILED, error=str(VLLM_ERROR)),
        Answer(400, {"error": VLLM_ERROR}),
        id="the runpod SDK fails the job with str() of the error: its code stands",
    ),
    pytest.param(
        make_job(status=JobStatus.FAILED, error='{"message": "too long", "code": "413"}'),
        Answer(413, {"error": {"message": "too long", "code": "413"}}),
        id="a JSON-encoded error object's code stands, also as a string",
    ),
    pytest.param(
        make_job(status=JobStatus.FAILED, error="handler: boom"),
        Answer(
            500,
            {
                "error": {
                    "message": "job job-1 failed: handler: boom",
                    "type": "server_error",
                    "param": None,
                    "code": 500,
                }
            },
        ),
        id="any other failure is a 500 naming the job",
    ),
    pytest.param(
        make_job(status=JobStatus.FAILED, error="{__import__('os')}"),
        Answer(
            500,
            {
                "error": {
                    "message": "job job-1 failed: {__import__('os')}",
                    "type": "server_error",
                    "param": None,
                    "code": 500,
                }
            },
        ),
        id="an error text that is code, not a literal, is never run",
    ),
]


@pytest.mark.parametrize(("job", "expected"), ANSWERS)
def test_an_ended_job_answers(job: Job, expected: Answer) -> None:
    assert job_answer(job) == expected


def test_a_timed_out_job_answers_504() -> None:
    answer = job_answer(make_job(status=JobStatus.TIMED_OUT))
    assert answer.status == 504
    assert answer.body["error"]["message"] == "job job-1 ran past its execution timeout"


CHUNKS = [
    pytest.param(
        'data: {"a":1}\n\ndata: [DONE]\n\n', b'data: {"a":1}\n\ndata: [DONE]\n\n', id="text as is"
    ),
    pytest.param(
        [{"a": 1}, {"b": 2}], b'data: {"a":1}\n\ndata: {"b":2}\n\n', id="a list: one event per item"
    ),
    pytest.param(
        {"object": "error", "message": "m", "code": 400},
        b'data: {"error":{"object":"error","message":"m","code":400}}\n\n',
        id="an error object in OpenAI's shape",
    ),
]


@pytest.mark.parametrize(("chunk", "expected"), CHUNKS)
def test_a_stream_chunk_goes_out_as(chunk: Any, expected: bytes) -> None:
    assert sse_bytes(chunk) == expected
