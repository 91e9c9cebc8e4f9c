"""A load-balancing request that no worker can serve for lack of capacity is answered at once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.fleet.test_lb import lb_endpoint

pytestmark = pytest.mark.timeout(90)


def test_with_every_cpu_slot_taken_a_request_gets_503_no_capacity_without_waiting(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    server.settings["cpu_slots"] = 1  # [server] cpu_slots: this machine takes one CPU worker
    server.add_endpoint("busy", "native_echo.py", workers=1)  # holds the only slot
    server.add_endpoint_text("web", lb_endpoint("web", active=0))
    server.start(wait_workers=False)
    server.wait_workers("busy", 1)

    # The hold limit is 60 s: a reply inside the client's 15 s proves nobody waited it out.
    reply = httpx.get(f"{server.url}/lb/web/echo/x", headers=server.headers, timeout=15)

    assert reply.status_code == 503
    error = reply.json()["error"]
    assert "no capacity" in error and "throttled" in error, error
    assert "starting" not in error
    history = server.get("/admin/workers?endpoint=web&all=1").json()
    assert history[0]["transitions"][0]["state"] == "throttled"
