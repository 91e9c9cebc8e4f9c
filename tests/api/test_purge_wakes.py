"""A purge wakes every client waiting on a purged job: /runsync and status-sync answer
CANCELLED at once (they used to sleep out their whole wait, 90 s by default). In process:
httpx.ASGITransport against the app over a real SQLite store, no worker, so jobs stay queued."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from runq.api.auth import ApiKeys
from runq.core.config import ServerConfig
from runq.core.spec import loads_spec
from runq.server.app import create_app
from runq.server.services import Services
from runq.store.sqlite import SqliteJobStore
from tests.conftest import endpoint_toml

pytestmark = pytest.mark.timeout(30)
KEY = {"Authorization": "Bearer admin-key"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = SqliteJobStore(tmp_path / "runq.db")
    plane = Services(ServerConfig(data_dir=tmp_path), store, "webhook-secret")
    keys = ApiKeys("admin-key", store)
    app = create_app(plane, keys, [])
    await store.open()
    await keys.load()
    plane.endpoints.serve(loads_spec(endpoint_toml("echo", "native_echo.py"), tmp_path / "e.toml"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://runq", headers=KEY, timeout=60
    ) as client:
        yield client
    await store.close()


async def test_a_purge_answers_waiting_runsync_and_status_sync_at_once(
    client: httpx.AsyncClient,
) -> None:
    queued = (await client.post("/v2/echo/run", json={"input": 1})).json()["id"]
    runsync = asyncio.create_task(client.post("/v2/echo/runsync?wait=60000", json={"input": 2}))
    status_sync = asyncio.create_task(client.get(f"/v2/echo/status-sync/{queued}?wait=60000"))

    async def queued_now() -> int:
        return int((await client.get("/v2/echo/health")).json()["jobs"]["inQueue"])

    deadline = asyncio.get_running_loop().time() + 10
    while await queued_now() < 2:  # the runsync's job is queued: its wait has begun
        assert asyncio.get_running_loop().time() < deadline, "the runsync never queued its job"
        await asyncio.sleep(0.01)
    assert not runsync.done()

    purged = await client.post("/v2/echo/purge-queue")
    assert purged.json() == {"removed": 2, "status": "completed"}
    answered = await asyncio.wait_for(asyncio.gather(runsync, status_sync), timeout=5)
    assert [r.json()["status"] for r in answered] == ["CANCELLED", "CANCELLED"]
