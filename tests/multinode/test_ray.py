"""Workers on a Ray cluster (`[server] ray_address`): GPU-type priority with fallback, model
locality, and a node lost mid-job losing no job.

The cluster (tests/multinode/conftest.py): a head with no GPU, nodes l4-a and l4-b with one
`gpu:L4` each, and a6000 with one `gpu:A6000`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, wait_until
from tests.multinode.conftest import RayCluster

pytestmark = [pytest.mark.multinode, pytest.mark.timeout(180)]


def ray_server(factory: Callable[[], Server], cluster: RayCluster) -> Server:
    server = factory()
    server.config_extra = f'ray_address = "{cluster.address}"\n'
    return server


def endpoint(
    name: str, gpu: str, active: int, extra: str = "", handler: str = "native_sleep.py"
) -> str:
    return (
        f'name = "{name}"\n[worker]\ncommand = ["{{python}}", "{{handlers}}/{handler}"]\n'
        f"[compute]\ngpu = {gpu}\n"
        f"[scaling]\nactive_workers = {active}\nmax_workers = {max(active, 1)}\n"
        f'idle_timeout = "1s"\nflashboot = false\n{extra}'
    )


def live(server: Server, name: str) -> list[dict[str, Any]]:
    return [w for w in server.workers(name) if w["state"] in ("idle", "running")]


def test_workers_take_the_preferred_gpu_type_then_fall_back(
    server_factory: Callable[[], Server], ray_cluster: RayCluster
) -> None:
    server = ray_server(server_factory, ray_cluster)
    server.add_endpoint_text("gen", endpoint("gen", '["24GB", "48GB"]', active=3))
    server.start(wait_workers=False)
    server.wait_workers("gen", 3, timeout=60)

    placed = sorted((w["gpu_type"], ray_cluster.name_of(w["host"])) for w in live(server, "gen"))
    # Both L4 nodes first (24GB is the first choice), then the A6000 when they are full.
    assert placed == [("A6000", "a6000"), ("L4", "l4-a"), ("L4", "l4-b")]
    jobs = [server.run("gen", {"input": {"seconds": 0.2}}) for _ in range(6)]
    for job_id in jobs:
        assert server.wait_status("gen", job_id, {"COMPLETED", "FAILED"})["status"] == "COMPLETED"


def test_a_worker_goes_back_to_the_node_that_caches_its_model(
    server_factory: Callable[[], Server], ray_cluster: RayCluster, tmp_path: Any
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_text("tiny weights")
    server = ray_server(server_factory, ray_cluster)
    server.add_endpoint_text("filler", endpoint("filler", '["24GB"]', active=0))
    model = f'[model]\nsource = "file://{weights}"\n'
    server.add_endpoint_text(
        "cached", endpoint("cached", '["24GB"]', active=0, extra=model, handler="native_model.py")
    )
    server.start(wait_workers=False)

    # filler's worker takes the first-choice L4 node; cached's then lands on the other one.
    busy = server.run("filler", {"input": {"seconds": 4}})
    server.wait_status("filler", busy, {"IN_PROGRESS"}, timeout=60)
    first = server.run("cached", {"input": {"seconds": 0}})
    done = server.wait_status("cached", first, {"COMPLETED"}, timeout=60)
    assert done["output"]["model"] == "tiny weights"  # pulled on its node: RUNQ_MODEL_PATH
    default_node = ray_cluster.name_of(live(server, "filler")[0]["host"])
    cached_node = ray_cluster.name_of(
        next(w for w in server.get("/admin/workers?all=1").json() if w["id"] == done["workerId"])[
            "host"
        ]
    )
    assert cached_node != default_node

    # Both scale to zero; the next cached job goes where its model is, not to the first choice.
    server.wait_status("filler", busy, {"COMPLETED"}, timeout=30)
    wait_until(lambda: not live(server, "filler") and not live(server, "cached"), timeout=30)
    again = server.run("cached", {"input": {"seconds": 0}})
    final = server.wait_status("cached", again, {"COMPLETED"}, timeout=60)
    worker = next(
        w for w in server.get("/admin/workers?all=1").json() if w["id"] == final["workerId"]
    )
    assert ray_cluster.name_of(worker["host"]) == cached_node


def test_a_node_lost_mid_job_loses_no_job(
    server_factory: Callable[[], Server], ray_cluster: RayCluster
) -> None:
    server = ray_server(server_factory, ray_cluster)
    server.add_endpoint_text("big", endpoint("big", '["48GB", "24GB"]', active=1))
    server.start(wait_workers=False)
    server.wait_workers("big", 1, timeout=60)
    assert ray_cluster.name_of(live(server, "big")[0]["host"]) == "a6000"

    job_id = server.run("big", {"input": {"seconds": 3}})
    server.wait_status("big", job_id, {"IN_PROGRESS"}, timeout=30)
    ray_cluster.cluster.remove_node(ray_cluster.nodes["a6000"], allow_graceful=False)

    final = server.wait_status("big", job_id, {"COMPLETED", "FAILED"}, timeout=90)
    assert final["status"] == "COMPLETED"
    assert final["retries"] == 1
    worker = next(
        w for w in server.get("/admin/workers?all=1").json() if w["id"] == final["workerId"]
    )
    assert worker["gpu_type"] == "L4"  # the fallback type, on a node still alive


def test_a_worker_on_a_ray_node_sees_none_of_the_servers_secrets(
    server_factory: Callable[[], Server],
    ray_cluster: RayCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    monkeypatch.setenv("PGPASSWORD", "pg-password-value")
    server = ray_server(server_factory, ray_cluster)
    server.add_endpoint_text("env", endpoint("env", '["24GB"]', 1, handler="native_env.py"))
    server.start(wait_workers=False)
    server.wait_workers("env", 1, timeout=60)
    (pid,) = [w["pid"] for w in live(server, "env")]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    environ = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    secrets = (server.key.encode(), b"aws-secret-value", b"pg-password-value")
    assert not [k for k, v in environ.items() if v in secrets], "the worker sees a secret"
    assert b"RUNQ_API_KEY" not in environ
    assert environ[b"RUNPOD_ENDPOINT_ID"] == b"env" and b"PATH" in environ
    tmp = Path(environ[b"TMPDIR"].decode())
    assert tmp.is_relative_to(server.data_dir / "workers")  # a folder of its own on its node
    # What it prints on its node reaches the control plane's log of it.
    (worker,) = [w["id"] for w in live(server, "env")]
    wait_until(lambda: server.get(f"/admin/workers/{worker}/logs").json()["lines"], timeout=20)
