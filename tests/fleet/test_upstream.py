"""runq's upstream client against a real worker HTTP server (uvicorn): keep-alive reuse,
streamed bodies both ways, HEAD, and a clear error when nothing listens."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from runq.fleet.upstream import Pool, UpstreamError
from tests.conftest import HANDLERS, free_port, wait_until

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def app_port() -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, str(HANDLERS / "lb_app.py")], env=env)
    try:
        wait_until(lambda: _pings(port), timeout=15)
        yield port
    finally:
        proc.kill()
        proc.wait()


def _pings(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_requests_reuse_one_kept_alive_connection(
    app_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = 0
    real = asyncio.open_connection

    async def counting(*args: object, **kwargs: object) -> object:
        nonlocal opened
        opened += 1
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "open_connection", counting)  # the pool dials through it
    pool = Pool(app_port)
    for n in range(5):
        answer = await pool.request("POST", f"/echo/{n}?q=1", [], b"body")
        seen = json.loads(await answer.read())
        assert (answer.status, seen["path"], seen["body"]) == (200, f"/echo/{n}", "body")
    assert opened == 1
    pool.close()


async def test_a_streamed_body_goes_chunked_and_comes_back_whole(app_port: int) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for piece in (b"one ", b"two ", b"three"):
            yield piece

    pool = Pool(app_port)
    answer = await pool.request("PUT", "/echo/stream", [], parts())
    seen = json.loads(await answer.read())
    assert seen["body"] == "one two three"
    assert seen["headers"]["transfer-encoding"] == "chunked"
    get = await pool.request("GET", "/echo/plain", [], b"")
    assert "transfer-encoding" not in json.loads(await get.read())["headers"]
    head = await pool.request("HEAD", "/ping", [], b"")
    assert head.status == 200 and await head.read() == b""
    pool.close()


async def test_nothing_listening_is_a_clear_error() -> None:
    with pytest.raises(UpstreamError, match="cannot connect"):
        await Pool(free_port()).request("GET", "/", [], b"")
