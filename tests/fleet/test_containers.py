"""Image workers end to end: an unmodified runpod worker image run by podman under a real
`runq serve`, driven through the official runpod client. The image is built once per machine
(tests/images.py). Without an engine these tests skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import runpod

from runq.fleet.container_host import LABEL_PLANE, container_name, freezer_of, plane_id
from runq.fleet.engine import Engine
from tests.conftest import Server, free_port, wait_until
from tests.images import engine_or_skip, ensure_runpod_image, fake_cdi_gpus

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return engine_or_skip(tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="session")
def image(podman: Engine) -> str:
    return ensure_runpod_image(podman)


ONE_WORKER = "active_workers = 1\nmax_workers = 1"


def image_endpoint(name: str, image: str, extra: str = "", scaling: str = ONE_WORKER) -> str:
    return f'name = "{name}"\n[worker]\nimage = "{image}"\n{extra}\n[scaling]\n{scaling}\n'


def containers(podman: Engine, server: Server) -> list[dict[str, Any]]:
    """This control plane's containers, as the engine lists them."""
    label = f"label={LABEL_PLANE}={plane_id(server.data_dir.resolve())}"
    done = subprocess.run(
        podman.argv("ps", "-a", "--filter", label, "--format", "json"),
        env=podman.environ(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout or "[]")  # type: ignore[no-any-return]


def engine_output(podman: Engine, *args: str) -> str:
    done = subprocess.run(podman.argv(*args), env=podman.environ(), capture_output=True, text=True)
    return done.stdout


def inspect(podman: Engine, worker_id: str, template: str) -> str:
    done = subprocess.run(
        podman.argv("inspect", "--format", template, container_name(worker_id)),
        env=podman.environ(),
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def ready_worker(server: Server, endpoint: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: next((w for w in server.workers(endpoint) if w["state"] == "idle"), None),
        timeout=60,
    )


@pytest.fixture(scope="module")
def live(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(root=tmp_path_factory.mktemp("containers"), port=free_port())
    (server.data_dir / "models" / "hub").mkdir(parents=True)  # the host model cache
    server.add_endpoint_text("img", image_endpoint("img", image))
    flash = 'active_workers = 0\nmax_workers = 1\nidle_timeout = "1s"\nflashboot = true'
    server.add_endpoint_text("flash", image_endpoint("flash", image, scaling=flash))
    try:
        server.start(wait_workers=False)
        server.wait_workers("img", 1, timeout=90)
        runpod.api_key = server.key
        runpod.endpoint_url_base = f"{server.url}/v2"
        yield server
    finally:
        server.stop()


def test_an_unmodified_runpod_image_completes_jobs_through_the_official_client(
    live: Server,
) -> None:
    endpoint = runpod.Endpoint("img")

    assert endpoint.run_sync({"echo": "hi"}, timeout=60)["echo"] == "hi"
    job = endpoint.run({"echo": 2})
    assert job.output(timeout=60)["echo"] == 2
    assert job.status() == "COMPLETED"


def test_the_container_gets_the_worker_contract_and_the_model_cache(live: Server) -> None:
    cache = str(live.data_dir.resolve() / "models")
    names = ["RUNPOD_ENDPOINT_ID", "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS", "CUDA_VISIBLE_DEVICES"]
    paths = [cache, "/runpod-volume/huggingface-cache/hub"]

    output = runpod.Endpoint("img").run_sync({"env": names, "paths": paths}, timeout=60)

    assert output["env"] == {
        "RUNPOD_ENDPOINT_ID": "img",
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
        "CUDA_VISIBLE_DEVICES": "",  # a CPU worker sees no GPU
    }
    assert output["exists"] == {path: True for path in paths}
    assert output["pid"] != 1  # --init: a reaper is PID 1 and passes SIGTERM on


def test_an_image_workers_cold_start_shows_the_pull_and_the_container_start(
    live: Server,
) -> None:
    job = runpod.Endpoint("img").run({"echo": "phases"})
    job.output(timeout=60)
    worker = ready_worker(live, "img")

    cold = worker["cold_start"]
    assert cold["image_pull_s"] == 0.0  # the host held the image
    assert 0 < cold["container_start_s"] < cold["total_s"]
    assert worker["image"]["pull_bytes"] == 0
    assert worker["image"]["digest"]
    found = live.get(f"/admin/jobs/{job.job_id}").json()
    assert {"image_pull_s", "container_start_s"} <= set(found["delay_breakdown"])


def test_the_token_goes_through_a_0600_env_file_never_argv_and_logs_to_the_worker_log(
    live: Server, podman: Engine
) -> None:
    worker = ready_worker(live, "img")
    env_file = live.data_dir / "containers" / "env" / f"{worker['id']}.env"

    assert env_file.stat().st_mode & 0o777 == 0o600
    token = next(
        line.split("=", 1)[1]
        for line in env_file.read_text().splitlines()
        if line.startswith("RUNPOD_AI_API_KEY=")
    )
    cli = live.get("/admin/workers?endpoint=img").json()[0]
    assert cli["id"] == worker["id"]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                assert token.encode() not in (entry / "cmdline").read_bytes()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    log = live.data_dir / "logs" / "img" / f"{worker['id']}.log"
    assert "Starting Serverless Worker" in wait_until(
        lambda: log.exists() and log.read_text(errors="replace"), timeout=30
    )


def test_a_parked_container_is_frozen_and_the_next_job_revives_it(
    live: Server, podman: Engine
) -> None:
    assert runpod.Endpoint("flash").run_sync({"echo": 1}, timeout=90)["echo"] == 1
    worker = wait_until(
        lambda: next((w for w in live.workers("flash") if w["state"] == "parked"), None),
        timeout=30,
    )
    pid = int(inspect(podman, worker["id"], "{{.State.Pid}}"))
    freezer = freezer_of(pid)
    assert freezer is not None
    # Parked in the registry first, then frozen: the freezer's write may follow a moment later
    # (it goes through `podman pause` while the cgroup's freeze file is not known yet).
    wait_until(lambda: freezer.read_text().strip() in ("FROZEN", "1"), timeout=10)

    assert runpod.Endpoint("flash").run_sync({"echo": 2}, timeout=60)["echo"] == 2

    [again] = [w for w in live.workers("flash")]
    assert again["id"] == worker["id"]  # the same container, thawed: no second cold start
    assert freezer.read_text().strip() in ("THAWED", "0")


def test_kill_9_of_runq_then_restart_then_stop_leaves_no_container(
    image: str, podman: Engine, server_factory: Any
) -> None:
    server: Server = server_factory()
    server.add_endpoint_text("crash", image_endpoint("crash", image))
    server.start(wait_workers=False)
    first = ready_worker(server, "crash")

    server.kill9()
    assert [c["Names"] for c in containers(podman, server)] == [[container_name(first["id"])]]

    server.start(wait_workers=False)
    second = ready_worker(server, "crash")
    names = [c["Names"] for c in containers(podman, server)]
    assert names == [[container_name(second["id"])]]  # the orphan was reaped at start

    server.stop()
    wait_until(lambda: containers(podman, server) == [], timeout=30)


@pytest.fixture
def fake_cdi() -> Iterator[Path]:
    with fake_cdi_gpus("runq-test-fake-gpu") as path:
        yield path


def test_gpus_are_granted_by_cdi_and_renumbered_from_zero(
    image: str, fake_cdi: Path, server_factory: Any
) -> None:
    server: Server = server_factory()
    server.config_extra = '[[hosts]]\nname = "box"\ngpus = [{ type = "L4", count = 3 }]\n'
    server.add_endpoint_text(
        "gpu",
        image_endpoint("gpu", image) + '[compute]\ngpu = ["24GB"]\ngpus_per_worker = 2\n',
    )
    server.start(wait_workers=False)
    worker = ready_worker(server, "gpu")
    names = ["RUNQ_FAKE_CDI", "CUDA_VISIBLE_DEVICES", *(f"RUNQ_FAKE_GPU_{i}" for i in range(3))]

    response = server.post("/v2/gpu/runsync", json={"input": {"env": names}}, timeout=60)

    held = worker["gpus"]  # host indices, e.g. [0, 1]
    assert len(held) == 2
    env = response.json()["output"]["env"]
    assert env["RUNQ_FAKE_CDI"] == "yes"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"  # inside, only the granted GPUs, from 0
    for index in range(3):
        assert env[f"RUNQ_FAKE_GPU_{index}"] == ("granted" if index in held else None)


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "runpod-image"


def test_folders_with_a_containerfile_are_built_once_by_content_and_serve_jobs(
    image: str, podman: Engine, server_factory: Any
) -> None:
    server: Server = server_factory()
    baked = server.root / "baked"
    baked.mkdir()
    (baked / "weights.txt").write_text("baked into the image")
    (baked / "Containerfile").write_text(f"FROM {image}\nCOPY weights.txt /weights.txt\n")
    (baked / "endpoint.toml").write_text(
        'name = "baked"\n[worker]\n[worker.container]\nbuild = "Containerfile"\n'
        + f"[scaling]\n{ONE_WORKER}\n"
    )
    # examples/runpod-image as it is, on the offline test image (Python and the runpod SDK)
    # instead of python:3.11-slim from Docker Hub, which this machine cannot reach.
    example = shutil.copytree(EXAMPLE, server.root / "example")

    def build(folder: Path, *extra: str) -> str:
        argv = [sys.executable, "-m", "runq.cli", "bundle", "build", str(folder), *extra]
        argv += ["--data-dir", str(server.data_dir)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        first = build(baked)
        assert first.startswith("built localhost/runq-baked:")
        assert build(baked).startswith(f"up to date: {first.split()[1]}")
        example_built = build(example, "--build-arg", f"BASE={image}")
        assert example_built.startswith("built localhost/runq-runpod-image:")

        server.endpoints += [baked / "endpoint.toml", example / "endpoint.toml"]
        server.start(wait_workers=False)
        ready_worker(server, "baked")
        body = {"input": {"read": ["/weights.txt"]}}
        baked_out = server.post("/v2/baked/runsync", json=body, timeout=60).json()["output"]
        ready_worker(server, "runpod-image")
        echo = server.post("/v2/runpod-image/runsync", json={"input": {"x": 1}}, timeout=60)

        assert baked_out["read"] == {"/weights.txt": "baked into the image"}
        assert echo.json()["output"] == {"echo": {"x": 1}}  # the example's unmodified handler
    finally:
        server.stop()
        for repository in ("localhost/runq-baked", "localhost/runq-runpod-image"):
            built = engine_output(podman, "images", "-q", repository).split()
            if built:
                engine_output(podman, "rmi", "-f", *built)
