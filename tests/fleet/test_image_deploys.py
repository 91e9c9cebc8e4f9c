"""Images over an endpoint's life: deploying one that keeps workers up gets its image before
its first worker starts (that worker's cold start shows no pull); once it is undeployed, the
image-store budget may evict its image, never one the user put on the host. Against podman, a
loopback registry and a real `runq serve`; skipped without them, except in CI, where they
fail."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from runq.fleet.engine import Engine
from tests.conftest import Server, wait_until
from tests.images import engine_or_skip, ensure_runpod_image, loopback_registry, unavailable

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

BLOB_BYTES = 24 * 2**20  # a layer of its own, random: its pull takes a while (unpacked, hashed)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_or_skip(tmp_path_factory.mktemp("engine"))


def run(engine: Engine, *args: str) -> str:
    done = subprocess.run(engine.argv(*args), env=engine.environ(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def pushed(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two images in a loopback registry, neither on this host: the runpod test image, each
    with a random layer of its own that its first pull downloads and unpacks."""
    base = ensure_runpod_image(engine)
    root = tmp_path_factory.mktemp("registry")
    try:
        registry_cm = loopback_registry(root)
        registry = registry_cm.__enter__()
    except FileNotFoundError as exc:
        unavailable(str(exc))
        raise
    folder = root / "context"
    folder.mkdir()
    (folder / "Containerfile").write_text(f"FROM {base}\nCOPY blob /blob\n")
    built = f"localhost/runq-test-prepull:{secrets.token_hex(4)}"
    refs = [f"{registry}/runq-test/prepull:{secrets.token_hex(4)}" for _ in range(2)]
    try:
        for ref in refs:
            (folder / "blob").write_bytes(os.urandom(BLOB_BYTES))
            run(engine, "build", "-t", built, str(folder))
            run(engine, "push", "--tls-verify=false", built, ref)
            run(engine, "rmi", built)
        yield refs
    finally:
        subprocess.run(
            engine.argv("rmi", "-f", built, *refs), env=engine.environ(), capture_output=True
        )
        registry_cm.__exit__(None, None, None)


def image_endpoint(name: str, image: str, scaling: str) -> str:
    return f'name = "{name}"\n[worker]\nimage = "{image}"\n[scaling]\n{scaling}\n'


def deploy(server: Server, name: str, text: str) -> None:
    path = server.root / f"{name}.toml"
    response = server.post("/admin/endpoints", json={"path": str(path), "toml": text})
    assert response.status_code == 200, response.text


def ready_worker(server: Server, endpoint: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: next((w for w in server.workers(endpoint) if w["state"] == "idle"), None),
        timeout=90,
    )


def held(engine: Engine, ref: str) -> bool:
    done = subprocess.run(engine.argv("image", "exists", ref), env=engine.environ())
    return done.returncode == 0


def test_a_deploy_with_active_workers_pulls_before_its_first_worker_starts(
    engine: Engine, pushed: list[str], server_factory: Callable[[], Server]
) -> None:
    early, late = pushed
    assert not held(engine, early) and not held(engine, late)
    server = server_factory()
    server.start(wait_workers=False)

    deploy(server, "early", image_endpoint("early", early, "active_workers = 1\nmax_workers = 1"))
    worker = ready_worker(server, "early")

    assert held(engine, early)  # pulled, by the deploy
    assert worker["cold_start"]["image_pull_s"] == 0.0
    assert worker["image"]["pull_bytes"] == 0
    index = json.loads((server.data_dir / "containers" / "images.json").read_text())
    assert early in index  # this host's image index, which placement reads
    done = server.post("/v2/early/runsync", json={"input": {"echo": 1}}, timeout=60).json()
    assert done["output"]["echo"] == 1

    # Scaled from zero, nothing is pulled at deploy: the first worker's cold start pays.
    deploy(server, "late", image_endpoint("late", late, "active_workers = 0\nmax_workers = 1"))
    assert not held(engine, late)
    job = server.post("/v2/late/runsync", json={"input": {"echo": 2}}, timeout=90).json()
    assert job["output"]["echo"] == 2
    paid = next(w for w in server.workers("late") if w["id"] == job["workerId"])
    assert paid["cold_start"]["image_pull_s"] > 0
    assert paid["image"]["pull_bytes"] > 0


def undeploy(server: Server, name: str) -> None:
    url = f"{server.url}/admin/endpoints/{name}"
    response = httpx.delete(url, headers=server.headers, timeout=60)
    assert response.status_code == 200, response.text


def indexed(server: Server) -> dict[str, Any]:
    """This host's image index, as runq keeps it."""
    path = server.data_dir / "containers" / "images.json"
    return json.loads(path.read_text()) if path.exists() else {}  # type: ignore[no-any-return]


def test_past_its_budget_runq_evicts_an_undeployed_endpoints_image_never_the_users(
    engine: Engine, pushed: list[str], server_factory: Callable[[], Server]
) -> None:
    first, second = pushed
    users = ensure_runpod_image(engine)  # on the host before runq: runq only finds it
    for ref in pushed:  # the other test may have pulled them
        subprocess.run(engine.argv("rmi", "-f", ref), env=engine.environ(), capture_output=True)
    server = server_factory()
    server.config_extra = '[containers]\nimage_store_max = "1MB"\n'  # less than any image
    server.start(wait_workers=False)
    # No host has such a GPU: the workers wait, the deploys still get (and pin) their images.
    waits = 'active_workers = 1\nmax_workers = 1\n[compute]\ngpu = ["80GB"]'

    deploy(server, "mine", image_endpoint("mine", users, waits))
    wait_until(lambda: users in indexed(server), timeout=60)
    undeploy(server, "mine")
    deploy(server, "first", image_endpoint("first", first, waits))
    wait_until(lambda: first in indexed(server), timeout=60)
    assert held(engine, first)  # pinned to a deployed endpoint: over the budget, it stays
    undeploy(server, "first")
    deploy(server, "second", image_endpoint("second", second, waits))

    # The pull of the second took runq's images past the budget: the first, runq's own and
    # no longer deployed, goes; the second is deployed; the user's was never runq's to remove.
    wait_until(lambda: not held(engine, first), timeout=60)
    assert held(engine, second)
    assert held(engine, users)
    assert set(indexed(server)) == {users, second}
