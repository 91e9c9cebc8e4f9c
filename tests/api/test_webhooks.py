"""Webhooks: POSTed on COMPLETED and FAILED, signed, retried, kept across a restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runq.fleet.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(90)


class Receiver:
    """A real HTTP server on loopback that records webhook POSTs; it can refuse the first N."""

    def __init__(self, refuse_first: int = 0, port: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.refuse = refuse_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.refuse > 0:
                    outer.refuse -= 1
                    self.send_response(500)
                else:
                    outer.received.append((dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def server(server_factory: Callable[[], Server]) -> Server:
    s = server_factory()
    s.add_endpoint("echo", "native_echo.py")
    s.add_endpoint("broken", "native_fail.py")
    return s.start()


def test_completed_job_posts_the_full_signed_envelope(server: Server, receiver: Receiver) -> None:
    job_id = server.run("echo", {"input": {"a": 1}, "webhook": receiver.url})
    wait_until(lambda: receiver.received, timeout=20)
    headers, body = receiver.received[0]
    payload = json.loads(body)
    assert payload["id"] == job_id
    assert payload["status"] == "COMPLETED"
    assert payload["output"] == {"echo": {"a": 1}}
    assert payload["input"] == {"a": 1}
    assert payload["webhook"] == receiver.url
    secret = (server.data_dir / "webhook_secret").read_text().strip()
    assert verify(secret, headers[SIGNATURE_HEADER], body, now=time.time())
    assert not verify("wrong-secret", headers[SIGNATURE_HEADER], body, now=time.time())


def test_failed_job_posts_too(server: Server, receiver: Receiver) -> None:
    server.run("broken", {"input": {}, "webhook": receiver.url})
    wait_until(lambda: receiver.received, timeout=20)
    payload = json.loads(receiver.received[0][1])
    assert payload["status"] == "FAILED"
    assert "boom" in payload["error"]


def test_a_refused_delivery_is_retried(server: Server) -> None:
    flaky = Receiver(refuse_first=1)
    try:
        server.run("echo", {"input": 1, "webhook": flaky.url})
        wait_until(lambda: flaky.received, timeout=20)
        assert len(flaky.received) == 1
    finally:
        flaky.close()


def test_a_pending_delivery_survives_a_control_plane_crash(
    server_factory: Callable[[], Server],
) -> None:
    # The receiver is down when the job completes, and the control plane dies before the
    # retry; the outbox is in the store, so the restarted control plane delivers.
    server: Server = server_factory()
    server.settings = {"webhook_backoff": 4, "webhook_attempts": 5}
    server.add_endpoint("echo", "native_echo.py")
    server.start()
    down = Receiver()
    port = down.port
    down.close()
    job_id = server.run("echo", {"input": 1, "webhook": f"http://127.0.0.1:{port}/hook"})
    server.wait_status("echo", job_id, {"COMPLETED"})
    server.kill9()
    revived = Receiver(port=port)
    try:
        server.start()
        wait_until(lambda: revived.received, timeout=30)
        assert json.loads(revived.received[0][1])["id"] == job_id
    finally:
        revived.close()
