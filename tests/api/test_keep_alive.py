"""An idle keep-alive connection stays open longer than a client's own idle timeout.

The runpod SDK (aiohttp, 15 s keep-alive) posts a result on a pooled connection after a quiet
spell such as a model load; a server that had closed it after uvicorn's default 5 s made that
post fail with "Server disconnected", and the SDK does not retry it.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.timeout(60)

IDLE_S = 6.0  # past uvicorn's default keep-alive (5 s): the idle spell is what is tested


def test_a_connection_idle_past_five_seconds_still_serves(
    server_factory: Callable[[], Server],
) -> None:
    server = server_factory()
    server.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for attempt in range(2):
            conn.request("GET", "/admin/endpoints", headers=server.headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, attempt
            if attempt == 0:
                time.sleep(IDLE_S)
    finally:
        conn.close()
