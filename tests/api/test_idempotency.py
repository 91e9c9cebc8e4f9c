"""The Idempotency-Key header of /run and /runsync, in process (httpx.ASGITransport against the
app over a real SQLite store; no worker: the test takes and finishes jobs through the store)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runq.api.auth import ApiKeys
from runq.core.config import ServerConfig
from runq.core.job import parse_worker_result
from runq.core.spec import loads_spec
from runq.server.app import create_app, routed_app
from runq.server.services import Services
from runq.store.sqlite import SqliteJobStore
from tests.conftest import endpoint_toml

pytestmark = pytest.mark.timeout(30)

ADMIN_KEY = "admin-key"


@dataclass
class Api:
    client: httpx.AsyncClient
    plane: Services
    keys: ApiKeys

    async def post(
        self, path: str, body: Any, key: str | bytes | None = None, api_key: str = ADMIN_KEY
    ) -> httpx.Response:
        headers: dict[str, Any] = {"Authorization": f"Bearer {api_key}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post(path, json=body, headers=headers)

    async def job_count(self) -> int:
        return len(await self.plane.jobs.recent("echo", 100))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = SqliteJobStore(tmp_path / "runq.db")
    plane = Services(ServerConfig(data_dir=tmp_path), store, "webhook-secret")
    keys = ApiKeys(ADMIN_KEY, store)
    app = create_app(plane, keys, [])
    await store.open()
    await keys.load()
    spec_path = tmp_path / "echo.toml"
    plane.endpoints.serve(loads_spec(endpoint_toml("echo", "native_echo.py"), spec_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runq") as client:
        yield Api(client, plane, keys)
    await store.close()


async def test_a_retry_with_the_same_key_gets_the_same_job(api: Api) -> None:
    first = await api.post("/v2/echo/run", {"input": {"n": 1}}, key="order-42")
    again = await api.post("/v2/echo/run", {"input": {"n": 1}}, key="order-42")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {"id": first.json()["id"], "status": "IN_QUEUE"}
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert await api.job_count() == 1


async def test_the_same_body_serialised_another_way_is_the_same_request(api: Api) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": "k"}
    first = await api.client.post(
        "/v2/echo/run", content=b'{"input": {"a": 1, "b": 2}}', headers=headers
    )
    again = await api.client.post(
        "/v2/echo/run", content=b'{"input":{"b":2,"a":1}}', headers=headers
    )

    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


async def test_different_keys_and_no_key_make_a_job_each(api: Api) -> None:
    ids = {
        (await api.post("/v2/echo/run", {"input": 1}, key=key)).json()["id"]
        for key in ("a", "b", None, None)
    }

    assert len(ids) == 4
    assert await api.job_count() == 4


async def test_a_key_is_scoped_to_the_api_key_that_used_it(api: Api) -> None:
    _, other_key = await api.keys.create("other-client", ("invoke:echo",))

    mine = await api.post("/v2/echo/run", {"input": 1}, key="shared")
    theirs = await api.post("/v2/echo/run", {"input": 1}, key="shared", api_key=other_key)

    assert theirs.status_code == 200
    assert theirs.json()["id"] != mine.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


@pytest.mark.parametrize(
    ("second_path", "second_body"),
    [("/v2/echo/run", {"input": 2}), ("/v2/echo/runsync", {"input": 1})],
    ids=["another-body", "another-route"],
)
async def test_a_key_reused_for_another_request_is_refused_with_422(
    api: Api, second_path: str, second_body: Any
) -> None:
    await api.post("/v2/echo/run", {"input": 1}, key="order-42")

    reply = await api.post(second_path, second_body, key="order-42")

    assert reply.status_code == 422
    assert "Idempotency-Key 'order-42'" in reply.json()["error"]
    assert await api.job_count() == 1


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "empty"),
        ("k" * 256, "256 characters; the limit is 255"),
        ("caf\xe9".encode("latin-1"), "printable ASCII"),
        ("caf\u00e9".encode(), "printable ASCII"),
        ("tab\there", "printable ASCII"),
    ],
    ids=["empty", "256-characters", "latin-1-byte", "utf-8-bytes", "control-character"],
)
async def test_an_invalid_key_is_a_400_naming_the_header(
    api: Api, key: str | bytes, message: str
) -> None:
    reply = await api.post("/v2/echo/run", {"input": 1}, key=key)

    assert reply.status_code == 400
    error = reply.json()["error"]
    assert "header 'Idempotency-Key'" in error and message in error
    assert await api.job_count() == 0


async def test_the_header_given_twice_is_a_400(api: Api) -> None:
    headers = [
        ("Authorization", f"Bearer {ADMIN_KEY}"),
        ("Idempotency-Key", "a"),
        ("Idempotency-Key", "b"),
    ]
    reply = await api.client.post("/v2/echo/run", json={"input": 1}, headers=headers)

    assert reply.status_code == 400 and "give it once" in reply.json()["error"]


async def test_a_key_of_255_printable_characters_is_accepted(api: Api) -> None:
    key = ("0123456789abcdef ~!" * 14)[:255]

    reply = await api.post("/v2/echo/run", {"input": 1}, key=key)

    assert reply.status_code == 200


async def test_a_runsync_retry_answers_with_the_jobs_result_now(api: Api) -> None:
    store = api.plane.store
    first = await api.post("/v2/echo/runsync?wait=1000", {"input": 7}, key="sync-1")
    assert first.json()["status"] == "IN_QUEUE"  # nobody took it within the wait
    job_id = first.json()["id"]
    [taken] = await store.take("echo", "w1", 1)
    await store.finish(taken.id, "w1", parse_worker_result({"output": {"echo": 7}}))

    again = await api.post("/v2/echo/runsync?wait=1000", {"input": 7}, key="sync-1")

    body = again.json()
    assert (body["id"], body["status"], body["output"]) == (job_id, "COMPLETED", {"echo": 7})
    assert again.headers["idempotent-replayed"] == "true"
    assert await api.job_count() == 1


def test_the_openapi_document_declares_the_header_and_its_422() -> None:
    with warnings.catch_warnings():
        # GET and POST of one api_route share an operationId (reported; harmless here).
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        paths = routed_app().openapi()["paths"]

    for route in ("run", "runsync"):
        operation = paths[f"/v2/{{endpoint}}/{route}"]["post"]
        headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert headers == ["Idempotency-Key"]
        error = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert error["required"] == ["error"]
