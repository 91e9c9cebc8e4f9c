"""End to end: `runq serve` pulls an endpoint's model into the host cache before starting its
worker, the worker reads it at model_path(), and a bad model fails the start with the reason."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Server, wait_until
from tests.models.fileserver import FileServer

pytestmark = pytest.mark.timeout(60)

WEIGHTS = b"weights of a very small model\n"
ENDPOINT = """name = "{name}"
[worker]
command = ["{{python}}", "{{handlers}}/native_model.py"]
[scaling]
active_workers = 1
max_workers = 1
[model]
source = "{url}"
sha256 = "{sha256}"
"""


@pytest.fixture
def files() -> Iterator[FileServer]:
    with FileServer({"/tiny.bin": WEIGHTS}).running() as running:
        yield running


def test_a_worker_reads_its_model_at_model_path_and_a_bad_model_fails_its_start(
    server_factory: Callable[[], Server], files: FileServer
) -> None:
    good, wrong = hashlib.sha256(WEIGHTS).hexdigest(), "0" * 64
    server = server_factory()
    url = f"{files.url}/tiny.bin"
    server.add_endpoint_text("good", ENDPOINT.format(name="good", url=url, sha256=good))
    server.add_endpoint_text("bad", ENDPOINT.format(name="bad", url=url, sha256=wrong))
    server.start(wait_workers=False)
    server.wait_workers("good", 1)

    job = server.run("good", {"input": {}})
    output = server.wait_status("good", job, {"COMPLETED", "FAILED"})["output"]

    assert output["model"] == WEIGHTS.decode()
    assert output["path"].startswith(str(server.data_dir / "models"))
    cache = server.get("/admin/cache").json()
    assert [(m["source"], m["sha256"]) for m in cache["models"]] == [(url, good)]

    def failed_start() -> str:
        for row in server.get("/admin/workers?endpoint=bad&all=1").json():
            for step in row["transitions"]:
                if "model fetch failed" in step["reason"]:
                    return str(step["reason"])
        return ""

    reason = wait_until(failed_start, timeout=20)
    assert "sha256 mismatch" in reason and f"expected {wrong}" in reason and url in reason
    assert files.gets["/tiny.bin"] >= 2  # the bad one was fetched, refused, not cached
    assert server.health("bad")["workers"]["idle"] == 0
