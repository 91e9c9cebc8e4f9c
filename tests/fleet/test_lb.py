"""Load-balancing endpoints live: requests proxied to the workers' own HTTP servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(120)

LB = """
name = "{name}"
type = "load_balancer"
[worker]
command = ["{python}", "{handlers}/lb_app.py"]
port = 8080
env = {env}
[scaling]
active_workers = {active}
max_workers = {max}
scaler = "request_count"
requests_per_worker = 4
idle_timeout = "30s"
init_timeout = "{init_timeout}"
"""


def lb_endpoint(name: str, **overrides: Any) -> str:
    fields: dict[str, Any] = {"env": "{}", "active": 1, "max": 1, "init_timeout": "60s"}
    fields.update(overrides)
    text = LB.replace("{name}", name)
    for key, value in fields.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def ready(server: Server, name: str) -> list[dict[str, Any]]:
    return [w for w in server.workers(name) if w["state"] in ("idle", "running")]


@pytest.fixture(scope="module")
def lb_server(module_server_factory: Any) -> Server:
    """One server for the file's request-level tests: none of them changes its workers."""
    server: Server = module_server_factory()
    server.add_endpoint_text("web", lb_endpoint("web"))
    server.add_endpoint("queue", "native_echo.py")
    server.start(wait_workers=False)
    wait_until(lambda: len(ready(server, "web")) == 1, timeout=30)
    return server


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_custom_paths_and_methods_reach_the_worker(lb_server: Server, method: str) -> None:
    reply = httpx.request(
        method,
        f"{lb_server.url}/lb/web/echo/a/b?x=1&y=two",
        headers={**lb_server.headers, "X-Custom": "kept"},
        content=b"payload" if method != "GET" else None,
        timeout=10,
    )
    assert reply.status_code == 200
    seen = reply.json()
    assert (seen["method"], seen["path"], seen["query"]) == (
        method,
        "/echo/a/b",
        {"x": "1", "y": "two"},
    )
    assert seen["body"] == ("payload" if method != "GET" else "")
    assert seen["headers"]["x-custom"] == "kept"
    assert "authorization" not in seen["headers"]  # runq's key stays with runq


def test_server_sent_events_arrive_as_they_are_written(lb_server: Server) -> None:
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with httpx.stream(
        "GET", f"{lb_server.url}/lb/web/sse?n=4&delay=0.3", headers=lb_server.headers, timeout=10
    ) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.time(), json.loads(line[6:])))
    assert [event["i"] for _, event in arrivals] == [0, 1, 2, 3]
    # Each event reached the client well before the last one was written (not buffered).
    first_received, _ = arrivals[0]
    last_written = arrivals[-1][1]["t"]
    assert first_received < last_written - 0.5


def test_auth_is_required_as_on_queue_endpoints(lb_server: Server) -> None:
    reply = httpx.get(f"{lb_server.url}/lb/web/echo/x", timeout=10)
    assert reply.status_code == 401
    wrong = httpx.get(f"{lb_server.url}/lb/web/echo/x", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    queue = httpx.get(f"{lb_server.url}/lb/queue/x", headers=lb_server.headers, timeout=10)
    assert queue.status_code == 404 and "queue endpoint" in queue.json()["error"]


def test_an_invoke_key_reaches_its_endpoint_only(lb_server: Server) -> None:
    made = lb_server.post("/admin/keys", json={"name": "web-ci", "scopes": ["invoke:web"]})
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    reply = httpx.post(f"{lb_server.url}/lb/web/echo/x", headers=headers, timeout=10)
    assert reply.status_code == 200 and reply.json()["path"] == "/echo/x"
    other = httpx.get(f"{lb_server.url}/lb/queue/x", headers=headers, timeout=10)
    assert other.status_code == 403
    assert other.json()["error"] == "key 'web-ci' may not invoke endpoint 'queue'"


def test_a_chunked_body_over_30_mb_is_cut_off_with_413(lb_server: Server) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked, counted as it passes
        for _ in range(31):
            yield b"x" * (1024 * 1024)

    url = f"{lb_server.url}/lb/web/echo/x"
    reply = httpx.post(url, headers=lb_server.headers, content=chunks(), timeout=30)
    assert reply.status_code == 413
    assert "limit" in reply.json()["error"]
    small = httpx.post(url, headers=lb_server.headers, content=iter([b"ok"]), timeout=30)
    assert small.status_code == 200  # the worker's connections survived the cut


def test_a_body_over_30_mb_is_refused_with_413_before_it_is_forwarded(lb_server: Server) -> None:
    reply = httpx.post(
        f"{lb_server.url}/lb/web/echo/x",
        headers={**lb_server.headers, "Content-Length": str(30 * 1024 * 1024 + 1)},
        content=b"x" * (30 * 1024 * 1024 + 1),
        timeout=30,
    )
    assert reply.status_code == 413
    assert "limit is 31457280 bytes" in reply.json()["error"]


def test_scale_from_zero_holds_the_request_until_a_worker_is_ready(server_factory: Any) -> None:
    server: Server = server_factory()
    server.add_endpoint_text("cold", lb_endpoint("cold", active=0, env='{ INIT_SECONDS = "1" }'))
    server.start(wait_workers=False)
    assert server.workers("cold") == []
    started = time.monotonic()
    reply = httpx.post(f"{server.url}/lb/cold/echo/hi", headers=server.headers, timeout=60)
    assert reply.status_code == 200 and reply.json()["path"] == "/echo/hi"
    assert time.monotonic() - started >= 1.0  # it waited for the worker's init


def test_a_worker_that_never_gets_ready_gives_503_with_a_message(server_factory: Any) -> None:
    server: Server = server_factory()
    text = lb_endpoint("never", active=0, env='{ INIT_SECONDS = "600" }', init_timeout="1s")
    server.add_endpoint_text("never", text)
    server.start(wait_workers=False)
    reply = httpx.get(f"{server.url}/lb/never/echo/x", headers=server.headers, timeout=30)
    assert reply.status_code == 503
    assert "became ready" in reply.json()["error"]


def test_an_unhealthy_worker_is_taken_out_and_replaced(server_factory: Any, tmp_path: Path) -> None:
    sick = tmp_path / "sick"
    server: Server = server_factory()
    server.add_endpoint_text("flaky", lb_endpoint("flaky", env=f'{{ SICK_FILE = "{sick}" }}'))
    server.start(wait_workers=False)
    wait_until(lambda: len(ready(server, "flaky")) == 1, timeout=30)
    first = ready(server, "flaky")[0]["id"]
    sick.touch()  # from now on every /ping answers 500

    def replaced() -> bool:
        rows = server.get("/admin/workers?endpoint=flaky&all=1").json()
        old = next(r for r in rows if r["id"] == first)
        return "unhealthy" in [t["state"] for t in old["transitions"]] and any(
            r["id"] != first for r in rows
        )

    wait_until(replaced, timeout=30)
    sick.unlink()  # the replacement is healthy
    wait_until(lambda: [w["id"] for w in ready(server, "flaky")] not in ([], [first]), timeout=30)
    reply = httpx.get(f"{server.url}/lb/flaky/echo/x", headers=server.headers, timeout=10)
    assert reply.status_code == 200 and reply.json()["worker"] != first


def test_the_lb_fastapi_example_serves_its_custom_and_streaming_routes(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    server.endpoints.append(Path(__file__).parents[2] / "examples" / "lb-fastapi" / "endpoint.toml")
    server.start(wait_workers=False)
    wait_until(lambda: len(ready(server, "lb-fastapi")) == 1, timeout=30)
    base = f"{server.url}/lb/lb-fastapi"
    made = httpx.post(
        f"{base}/generate",
        json={"prompt": "hi", "max_tokens": 3},
        headers=server.headers,
        timeout=10,
    )
    assert made.status_code == 200 and made.json()["tokens"] == 3
    bad = httpx.post(f"{base}/generate", content=b"{not json", headers=server.headers, timeout=10)
    assert bad.status_code == 400
    with httpx.stream("GET", f"{base}/stream?n=3&delay=0.01", headers=server.headers) as reply:
        events = [line for line in reply.iter_lines() if line.startswith("data: ")]
    assert [json.loads(e[6:])["i"] for e in events] == [0, 1, 2]
