"""What an image worker's container is given: its variables (through a 0600 env file) and its
mounts. Pure parts of fleet/containers.py, one row per case."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from runq.core.config import ServerConfig
from runq.core.containers_config import ContainersConfig
from runq.core.hosts import Host
from runq.core.spec import ComputeSection, EndpointSpec, WorkerSection
from runq.core.worker import Placement, Worker
from runq.errors import SpecError
from runq.fleet.containers import (
    RUNPOD_HUB_CACHE,
    RUNPOD_VOLUME,
    ContainerError,
    container_env,
    mounts,
    require_engine,
    write_env_file,
)
from runq.fleet.engine import Mount
from runq.models.cache import Pinned

ALIAS = "host.containers.internal"


def make_config(tmp_path: Path, **overrides: Any) -> ServerConfig:
    return dataclasses.replace(ServerConfig(data_dir=tmp_path / "data"), **overrides)


def make_spec(**compute: Any) -> EndpointSpec:
    worker = WorkerSection(command=(), dir=Path("/"), env={"MINE": "1"}, image="localhost/e")
    return EndpointSpec(name="e", worker=worker, compute=ComputeSection(**compute))


def make_worker(gpus: tuple[int, ...] = (), host: str = "box") -> Worker:
    gpu_type = "L4" if gpus else "cpu"
    return Worker("w1", "e", "tok", placement=Placement(host, gpus, gpu_type, gpu_type))


@pytest.mark.parametrize(
    ("gpus", "visible"),
    [
        pytest.param((), "", id="a CPU worker sees no GPU"),
        pytest.param((3,), "0", id="host GPU 3 is GPU 0 inside"),
        pytest.param((1, 2), "0,1", id="two host GPUs are 0 and 1 inside"),
    ],
)
def test_gpus_are_renumbered_from_zero(tmp_path: Path, gpus: tuple[int, ...], visible: str) -> None:
    env = container_env(make_config(tmp_path), make_spec(), make_worker(gpus), None, ALIAS)

    assert env["CUDA_VISIBLE_DEVICES"] == visible


def test_the_worker_contract_and_the_endpoint_env_are_passed(tmp_path: Path) -> None:
    env = container_env(make_config(tmp_path), make_spec(), make_worker(), None, ALIAS)

    assert env["MINE"] == "1"
    assert env["RUNPOD_AI_API_KEY"] == "tok"
    assert env["RUNPOD_WEBHOOK_GET_JOB"].startswith("http://127.0.0.1:8000/v2/e/job-take/w1")
    assert "RUNQ_CONTROL_PLANE" not in env  # the container is found by its label instead


def test_on_a_bridge_the_control_plane_is_reached_by_the_hosts_alias(tmp_path: Path) -> None:
    config = make_config(tmp_path, containers=ContainersConfig(network="bridge"))

    env = container_env(config, make_spec(), make_worker(), None, ALIAS)

    assert env["RUNPOD_WEBHOOK_PING"].startswith(f"http://{ALIAS}:8000/v2/e/ping/w1")
    assert env["RUNQ_URL"] == f"http://{ALIAS}:8000"


def test_the_model_cache_is_mounted_read_only_at_its_path_and_at_runpods(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (config.model_cache_dir / "hub").mkdir(parents=True)
    cache = str(config.model_cache_dir)

    found = mounts(config, make_spec(), make_worker(), None)

    assert found == (Mount(cache, cache), Mount(f"{cache}/hub", RUNPOD_HUB_CACHE))


def test_a_network_volume_is_runpod_volume_and_a_file_model_its_own_path(tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    config = make_config(tmp_path, hosts=(Host(name="box", volumes={"models": str(volume)}),))
    model = tmp_path / "weights.bin"
    held = Pinned(model, f"file://{model}", None, None)

    found = mounts(config, make_spec(network_volume="models"), make_worker(), held)

    cache = str(config.model_cache_dir)
    assert found == (
        Mount(cache, cache),
        Mount(str(model), str(model)),
        Mount(str(volume), RUNPOD_VOLUME, read_only=False),
    )


def test_the_env_file_is_0600_and_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    path = tmp_path / "env" / "w1.env"

    write_env_file(path, {"A": "1", "B": "x y=z"})

    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "A=1\nB=x y=z\n"
    with pytest.raises(ContainerError, match="'C'"):
        write_env_file(path, {"C": "two\nlines"})


@pytest.mark.parametrize(
    ("overrides", "endpoint_type", "says"),
    [
        pytest.param(
            {"containers": ContainersConfig(network="bridge")},
            "load_balancer",
            'network = "host"',
            id="a load balancer on a bridge (its port would not be published)",
        ),
    ],
)
def test_an_image_endpoint_runq_cannot_serve_is_refused_naming_the_field(
    tmp_path: Path, overrides: dict[str, Any], endpoint_type: str, says: str
) -> None:
    spec = dataclasses.replace(make_spec(), type=endpoint_type)

    with pytest.raises(SpecError, match=says) as raised:
        require_engine(spec, make_config(tmp_path, **overrides))

    assert "field 'worker.image'" in str(raised.value)


def test_on_ray_an_image_endpoint_needs_no_engine_on_the_control_planes_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no engine on this machine
    here = make_config(tmp_path)
    on_ray = make_config(tmp_path, ray_address="10.0.0.1:6379")

    with pytest.raises(SpecError, match="no usable container engine"):
        require_engine(make_spec(), here)
    require_engine(make_spec(), on_ray)  # the nodes run the containers: accepted here
