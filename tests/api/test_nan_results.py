"""A worker's result that JSON cannot carry (NaN, Infinity, a lone surrogate): its job FAILS
with an error naming the field, the worker gets a 400, and every answer stays RFC 8259 JSON.

Before, such a result was stored and sent back to clients as `{"output": NaN}`, which JSON
parsers (browsers, Go, the RunPod SDKs') refuse whole (issue 15)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.inprocess import HELD_TOML, in_process_client
from tests.conftest import Server

pytestmark = pytest.mark.timeout(60)


def strict_json(raw: bytes) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(raw, parse_constant=refuse)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(tmp_path, HELD_TOML) as client:
        yield client


async def taken_jobs(client: httpx.AsyncClient, count: int) -> list[str]:
    """Queue `count` jobs and take them all as the remote worker `remote-1`."""
    ids = [
        (await client.post("/v2/held/run", json={"input": n})).json()["id"] for n in range(count)
    ]
    taken = await client.get(f"/v2/held/job-take-batch/remote-1?batch_size={count}")
    assert sorted(job["id"] for job in taken.json()) == sorted(ids)
    return ids


async def status(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v2/held/status/{job_id}")
    assert response.status_code == 200
    body: dict[str, Any] = strict_json(response.content)
    return body


@pytest.mark.parametrize(
    ("result", "names"),
    [
        (b'{"output": {"score": NaN}}', "field 'output.score': NaN"),
        (b'{"output": [1, -Infinity]}', "field 'output[1]': -Infinity"),
        (b'{"output": "\\udc80"}', "field 'output': holds a lone UTF-16 surrogate"),
    ],
    ids=["NaN", "-Infinity", "a lone surrogate"],
)
async def test_a_result_json_cannot_carry_fails_its_job_naming_the_field(
    client: httpx.AsyncClient, result: bytes, names: str
) -> None:
    [job_id] = await taken_jobs(client, 1)

    done = await client.post(f"/v2/held/job-done/remote-1/{job_id}", content=result)

    assert done.status_code == 400
    assert names in done.json()["error"]
    job = await status(client, job_id)
    assert job["status"] == "FAILED"
    assert "not valid JSON (RFC 8259)" in job["error"] and names in job["error"]
    assert "output" not in job


async def test_in_a_result_batch_only_the_job_with_nan_fails(client: httpx.AsyncClient) -> None:
    bad, good = await taken_jobs(client, 2)
    batch = (
        f'[{{"id": "{bad}", "result": {{"output": Infinity}}}},'
        f' {{"id": "{good}", "result": {{"output": 2.5}}}}]'
    )

    done = await client.post("/v2/held/job-done-batch/remote-1", content=batch)

    assert done.status_code == 200, done.text
    failed = await status(client, bad)
    assert failed["status"] == "FAILED" and "field 'output': Infinity" in failed["error"]
    completed = await status(client, good)
    assert (completed["status"], completed["output"]) == ("COMPLETED", 2.5)


async def test_a_stream_chunk_with_nan_is_refused_and_the_job_goes_on(
    client: httpx.AsyncClient,
) -> None:
    [job_id] = await taken_jobs(client, 1)

    chunk = await client.post(f"/v2/held/job-stream/remote-1/{job_id}", content=b'{"output": NaN}')

    assert chunk.status_code == 400
    assert "field 'output': NaN" in chunk.json()["error"]
    assert (await status(client, job_id))["status"] == "IN_PROGRESS"


def test_a_handler_returning_nan_fails_its_job_end_to_end(
    server_factory: Callable[[], Server],
) -> None:
    server = server_factory()
    server.add_endpoint("floats", "native_float.py")
    server.start()

    nan_job = server.run("floats", {"input": {"value": "nan"}})
    fine_job = server.run("floats", {"input": {"value": "1.5"}})

    failed = server.wait_status("floats", nan_job, {"FAILED", "COMPLETED"})
    assert failed["status"] == "FAILED"
    assert "field 'output.value': NaN" in failed["error"]
    completed = server.wait_status("floats", fine_job, {"FAILED", "COMPLETED"})
    assert (completed["status"], completed["output"]) == ("COMPLETED", {"value": 1.5})
    raw = server.get(f"/v2/floats/status/{nan_job}").content
    assert strict_json(raw)["status"] == "FAILED"
