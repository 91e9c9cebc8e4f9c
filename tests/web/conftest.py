"""A live `runq serve` for the dashboard tests, and a browser-like HTTP client for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import Server, free_port

# Its comment must reach the page as text, never as markup.
SLOW_TOML = """name = "slow"
# <script>alert("pwned")</script>
[worker]
command = ["{python}", "{handlers}/native_slow_init.py"]
[scaling]
active_workers = 0
max_workers = 1
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`slow`: a worker that never finishes starting, so its jobs stay queued; `fails`: a
    worker whose jobs fail with the input's message as the error."""
    root = tmp_path_factory.mktemp("dash")
    server = Server(root=root, port=free_port())
    server.add_endpoint_text("slow", SLOW_TOML)
    server.add_endpoint("fails", "native_fail_html.py", workers=0)
    server.start(wait_workers=False)
    yield server
    server.stop()


def browser(server: Server) -> httpx.Client:
    """A client that sends Origin on its requests as a browser does on a form POST."""
    return httpx.Client(base_url=server.url, headers={"Origin": server.url}, timeout=10)


@contextmanager
def signed_in(server: Server) -> Iterator[httpx.Client]:
    """A browser that has visited the dashboard link with the admin key."""
    with browser(server) as client:
        response = client.get(f"/?token={server.key}")
        assert response.status_code == 303, response.text
        yield client
