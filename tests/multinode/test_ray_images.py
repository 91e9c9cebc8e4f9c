"""Image workers on a Ray cluster: the worker actor runs the endpoint's container on its node
(podman there, GPUs by CDI name, the worker contract through an env file), FlashBoot freezes
it there, each node's image index steers placement, and nothing is left running.

The cluster (tests/multinode/conftest.py) runs on this machine: its nodes share one podman,
and a fake CDI spec stands for their GPUs (as in tests/fleet/test_containers.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runq.fleet.container_host import LABEL_PLANE, container_name, freezer_of, plane_id
from runq.fleet.engine import Engine
from tests.conftest import Server, wait_until
from tests.images import engine_or_skip, ensure_runpod_image, fake_cdi_gpus
from tests.multinode.conftest import RayCluster
from tests.multinode.test_ray import endpoint, live, ray_server

pytestmark = [pytest.mark.multinode, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_or_skip(tmp_path_factory.mktemp("engine"))


@pytest.fixture
def fake_gpus() -> Iterator[Path]:
    """Fake CDI devices 0-2 in /var/run/cdi, for the nodes' `gpu:L4` resources."""
    with fake_cdi_gpus("runq-test-fake-gpu-ray") as path:
        yield path


def containers(podman: Engine, server: Server) -> list[dict[str, Any]]:
    label = f"label={LABEL_PLANE}={plane_id(server.data_dir.resolve())}"
    done = subprocess.run(
        podman.argv("ps", "-a", "--filter", label, "--format", "json"),
        env=podman.environ(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout or "[]")  # type: ignore[no-any-return]


IMAGE_ENDPOINT = """name = "{name}"
[worker]
image = "{image}"
[compute]
gpu = ["24GB"]
[scaling]
active_workers = 0
max_workers = 1
idle_timeout = "1s"
flashboot = {flashboot}
"""


def worker_of(server: Server, worker_id: str) -> dict[str, Any]:
    return next(w for w in server.get("/admin/workers?all=1").json() if w["id"] == worker_id)


def test_an_image_worker_runs_its_container_on_its_node_and_returns_where_its_image_is(
    server_factory: Callable[[], Server],
    ray_cluster: RayCluster,
    podman: Engine,
    fake_gpus: Path,
) -> None:
    image = ensure_runpod_image(podman)
    server = ray_server(server_factory, ray_cluster)
    server.add_endpoint_text("filler", endpoint("filler", '["24GB"]', active=0))
    server.add_endpoint_text(
        "img", IMAGE_ENDPOINT.format(name="img", image=image, flashboot="true")
    )
    server.start(wait_workers=False)
    try:
        # filler's process worker takes the first-choice L4 node; img's container the other.
        busy = server.run("filler", {"input": {"seconds": 8}})
        server.wait_status("filler", busy, {"IN_PROGRESS"}, timeout=60)
        names = ["CUDA_VISIBLE_DEVICES", "RUNQ_FAKE_GPU_0", "RUNPOD_ENDPOINT_ID"]
        first = server.run("img", {"input": {"echo": 1, "env": names}})
        done = server.wait_status("img", first, {"COMPLETED", "FAILED"}, timeout=120)
        assert done["status"] == "COMPLETED", done
        assert done["output"]["env"] == {
            "CUDA_VISIBLE_DEVICES": "0",
            "RUNQ_FAKE_GPU_0": "granted",  # its node's GPU 0, by CDI name
            "RUNPOD_ENDPOINT_ID": "img",
        }
        worker = worker_of(server, done["workerId"])
        image_node = ray_cluster.name_of(worker["host"])
        filled = server.wait_status("filler", busy, {"COMPLETED"}, timeout=30)
        default_node = ray_cluster.name_of(worker_of(server, filled["workerId"])["host"])
        assert image_node != default_node
        assert worker["cold_start"]["container_start_s"] > 0
        assert worker["image"]["digest"]
        assert [c["Names"] for c in containers(podman, server)] == [
            [container_name(done["workerId"])]
        ]

        # Parked on its node by freezing its cgroup; the next job thaws the same container.
        wait_until(lambda: [w["state"] for w in server.workers("img")] == ["parked"], timeout=30)
        pid = containers(podman, server)[0]["Pid"]
        freezer = freezer_of(int(pid))
        assert freezer is not None
        wait_until(lambda: freezer.read_text().strip() in ("FROZEN", "1"), timeout=15)
        again = server.run("img", {"input": {"echo": 2}})
        thawed = server.wait_status("img", again, {"COMPLETED"}, timeout=60)
        assert thawed["workerId"] == done["workerId"]

        # Undeployed, its container is stopped on its node. Once filler's worker is gone too,
        # a new endpoint of the same image goes to the node that holds the image, not to the
        # first choice.
        gone = httpx.delete(f"{server.url}/admin/endpoints/img", headers=server.headers, timeout=60)
        assert gone.status_code == 200, gone.text
        assert containers(podman, server) == []
        wait_until(lambda: not live(server, "filler"), timeout=60)
        text = IMAGE_ENDPOINT.format(name="again", image=image, flashboot="false")
        path = server.root / "again.toml"
        deployed = server.post("/admin/endpoints", json={"path": str(path), "toml": text})
        assert deployed.status_code == 200, deployed.text
        later = server.run("again", {"input": {"echo": 3}})
        final = server.wait_status("again", later, {"COMPLETED"}, timeout=120)
        assert ray_cluster.name_of(worker_of(server, final["workerId"])["host"]) == image_node
    finally:
        server.stop()
    wait_until(lambda: containers(podman, server) == [], timeout=30)
