"""The real app with a real control plane and SQLite store, called in process
(httpx.ASGITransport): for API behaviour that needs no worker process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from runq.core.config import ServerConfig
from runq.core.spec import loads_spec
from runq.server.app import create_app
from runq.server.serve import build
from tests.conftest import endpoint_toml

# Its workers never call in: the jobs a test queues stay for the remote worker it plays.
HELD_TOML = 'name = "held"\n[worker]\ncommand = ["sleep", "600"]\n'


@asynccontextmanager
async def running_app(root: Path, toml: str = "") -> AsyncIterator[tuple[FastAPI, str]]:
    """The app, its lifespan entered, and its admin key. It serves one endpoint: `toml`, or
    `echo`, which scales from zero (a test that queues a job starts its worker)."""
    spec_file = root / "endpoint.toml"
    spec_file.write_text(toml or endpoint_toml("echo", "native_echo.py", workers=0))
    config = ServerConfig(data_dir=root / "data")
    plane, keys, api_key = build(config)
    app = create_app(plane, keys, [loads_spec(spec_file.read_text(), spec_file)])
    async with app.router.lifespan_context(app):
        yield app, api_key


@asynccontextmanager
async def in_process_client(root: Path, toml: str = "") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `running_app`, sending its admin key."""
    async with running_app(root, toml) as (app, api_key):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://runq", headers=headers, timeout=30
        ) as client:
            yield client
