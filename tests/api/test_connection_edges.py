"""Connection-level behaviour on a real uvicorn server on 127.0.0.1: an error answer keeps the
client's keep-alive connection, and a request head must arrive within the header timeout.

The app is runq's own (create_app over a real control plane), served by uvicorn with the
protocol `runq serve` uses, in a thread of the test process, with one route added that raises
an unexpected exception (runq has no known one left to trigger).
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from runq.api.header_timeout import protocol_class
from runq.server.serve import KEEP_ALIVE_S
from tests.api.inprocess import running_app
from tests.conftest import Server, free_port, wait_until

pytestmark = pytest.mark.timeout(60)

HEADER_TIMEOUT_S = 0.5  # short, so that waiting it out is quick


class LiveApp:
    """runq's app under uvicorn in a thread; `url` and `headers` for a client."""

    def __init__(self, root: Path, parser: str = "auto") -> None:
        self.root = root
        self.parser = parser
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers: dict[str, str] = {}
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        async with running_app(self.root) as (app, api_key):
            self.headers = {"Authorization": f"Bearer {api_key}"}

            async def boom() -> None:
                raise RuntimeError("an unexpected failure in a handler")

            app.add_api_route("/boom", boom)
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="critical",  # the traceback of /boom is expected
                timeout_keep_alive=KEEP_ALIVE_S,
                http=protocol_class(HEADER_TIMEOUT_S, self.parser),
            )
            self._server = uvicorn.Server(config)
            await self._server.serve()

    def start(self) -> None:
        self._thread.start()
        wait_until(lambda: self._server is not None and self._server.started, timeout=20)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(15)


@pytest.fixture
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveApp]:
    app = LiveApp(tmp_path, getattr(request, "param", "auto"))
    app.start()
    try:
        yield app
    finally:
        app.stop()


def local_port(response: httpx.Response) -> int:
    """The client's own port for the connection that carried `response`."""
    stream: Any = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


# A 500 from an unexpected exception, then each of issue 15's abusive inputs (400s now).
BAD_REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/boom", None),
    ("POST", "/v2/echo/run", b'{"input": "\\ud800"}'),
    ("POST", "/v2/echo/run", b'{"input": ' + b"1" * 4301 + b"}"),
    ("POST", "/v2/echo/run?ttl=" + "9" * 5000, b'{"input": 1}'),
    ("POST", "/v2/echo/run?ttl=-1", b'{"input": 1}'),
    ("GET", "/v2/echo/job-take-batch/remote-1?batch_size=" + "9" * 5000, None),
    ("GET", "/boom", None),
]


def test_an_error_answer_keeps_the_connection_for_the_next_request(live: LiveApp) -> None:
    with httpx.Client(base_url=live.url, headers=live.headers, timeout=10) as client:
        first = client.get("/v2/echo/health")
        assert first.status_code == 200
        port = local_port(first)
        for round_ in range(3):
            for method, path, body in BAD_REQUESTS:
                bad = client.request(method, path, content=body)
                assert bad.status_code in (400, 500), (path, bad.text)
                assert bad.headers["content-type"] == "application/json"
                assert "error" in json.loads(bad.content)
                good = client.get("/v2/echo/health")
                assert good.status_code == 200, (round_, path)
                # The same connection: the server never closed it after the error.
                assert local_port(bad) == local_port(good) == port, (round_, path)


def test_an_unexpected_exception_answers_a_json_500(live: LiveApp) -> None:
    response = httpx.get(f"{live.url}/boom", headers=live.headers, timeout=10)

    assert response.status_code == 500
    assert response.json() == {"error": "internal error (see the server log)"}
    assert response.headers.get("connection") != "close"


def closed_within(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closed `sock` (recv gives b""); fails past `limit_s`."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return time.monotonic() - started


@pytest.mark.parametrize("live", ["httptools", "h11"], indirect=True)  # uvicorn's two parsers
@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /v2/echo/health HTTP/1.1\r\nHost: x\r\n"],
    ids=["a connection that sends nothing", "a request head sent in part"],
)
def test_a_connection_without_a_whole_request_head_is_closed(live: LiveApp, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(sent)
        waited = closed_within(sock, 10)

    assert HEADER_TIMEOUT_S * 0.8 <= waited < HEADER_TIMEOUT_S + 5


def request_head(live: LiveApp) -> bytes:
    auth = live.headers["Authorization"]
    return f"GET /v2/echo/health HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode()


def read_response(sock: socket.socket) -> bytes:
    """One whole response (its Content-Length body), read off `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_kept_alive_connection_idle_past_the_header_timeout_still_serves(live: LiveApp) -> None:
    # Between requests the keep-alive timeout (75 s) applies, not the header timeout.
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request_head(live))
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT_S * 3)  # the idle spell is what is tested
        sock.sendall(request_head(live))
        assert read_response(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("live", ["httptools", "h11"], indirect=True)
def test_a_second_request_head_sent_in_part_is_closed_too(live: LiveApp) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request_head(live))
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(request_head(live)[:20])
        waited = closed_within(sock, 10)

    assert HEADER_TIMEOUT_S * 0.8 <= waited < HEADER_TIMEOUT_S + 5


def test_runq_serve_takes_the_header_timeout_from_its_config(
    server_factory: Any,
) -> None:
    server: Server = server_factory()
    server.settings["header_timeout"] = 1
    server.start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        waited = closed_within(sock, 10)

    assert 0.8 <= waited < 6


def test_runq_serve_raises_its_soft_open_file_limit() -> None:
    # In a child process: the limit is the process's own.
    script = (
        "import resource; from runq.server.serve import raise_fd_limit; "
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE); "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)); "
        "print(raise_fd_limit(4096), resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    returned, soft, hard = (int(part) for part in out)

    expected = 4096 if hard in (resource.RLIM_INFINITY, -1) else min(4096, hard)
    assert returned == soft == expected
