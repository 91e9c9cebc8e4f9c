"""Image workers in the endpoint file ([worker] image, [worker.container]) and the server
config's [containers]: what users type, and the errors they see."""

from __future__ import annotations

from pathlib import Path

import pytest

from runq.core.config import load_config
from runq.core.containers_config import ContainersConfig, RegistryLogin
from runq.core.image_ref import ImageRef, check_image_ref
from runq.core.spec import DEFAULT_SHM_BYTES, ContainerSection, loads_spec
from runq.errors import SpecError

DIGEST = "sha256:" + "ab" * 32


def spec(worker: str) -> str:
    return f'name = "img"\n[worker]\n{worker}\n'


def test_an_image_worker_needs_no_command_and_keeps_the_image_defaults(tmp_path: Path) -> None:
    parsed = loads_spec(spec('image = "localhost/echo:v1"'), tmp_path / "e.toml")

    assert parsed.worker.image == "localhost/echo:v1"
    assert parsed.worker.command == ()  # the image's CMD
    assert parsed.worker.entrypoint is None  # the image's ENTRYPOINT
    assert parsed.worker.container == ContainerSection()
    assert parsed.worker.container.shm_size == DEFAULT_SHM_BYTES > 64 * 10**6


def test_every_container_field_is_read(tmp_path: Path) -> None:
    text = spec(
        f'image = "registry.example.com:5000/team/worker@{DIGEST}"\n'
        'command = ["python", "-u", "/handler.py"]\n'
        'entrypoint = ["/bin/sh", "-c"]\n'
        "[worker.container]\n"
        'pull = "always"\nshm_size = "2GiB"\nregistry = "team"\n'
        'extra_args = ["--cap-drop", "ALL"]\n'
    )

    worker = loads_spec(text, tmp_path / "e.toml").worker

    assert worker.command == ("python", "-u", "/handler.py")
    assert worker.entrypoint == ("/bin/sh", "-c")
    assert worker.container == ContainerSection(
        pull="always", shm_size=2 * 2**30, registry="team", extra_args=("--cap-drop", "ALL")
    )


def test_a_built_image_is_named_after_the_endpoint_and_never_pulled(tmp_path: Path) -> None:
    text = spec('[worker.container]\nbuild = "Containerfile"')

    worker = loads_spec(text, tmp_path / "e.toml").worker

    assert worker.image == "localhost/runq-img"  # tagged by the folder's hash when built
    assert worker.container.build == "Containerfile"
    assert worker.container.pull == "never"


INVALID = [
    pytest.param(
        'image = "echo"\n[worker.container]\nbuild = "Containerfile"',
        "worker.image",
        id="an image and a build",
    ),
    pytest.param(
        '[worker.container]\nbuild = "Containerfile"\npull = "always"',
        "worker.container.build",
        id="a build that should be pulled",
    ),
    pytest.param('image = "Team/Echo"', "worker.image", id="an image with upper-case path"),
    pytest.param('image = "echo v1"', "worker.image", id="an image with a space"),
    pytest.param('image = "echo@sha256:abc"', "worker.image", id="a short digest"),
    pytest.param("image = 5", "worker.image", id="an image that is a number"),
    pytest.param(
        'command = ["python", "h.py"]\nentrypoint = ["/bin/sh"]',
        "worker.entrypoint",
        id="an entrypoint without an image",
    ),
    pytest.param(
        'command = ["python", "h.py"]\n[worker.container]\npull = "never"',
        "worker.container",
        id="a container table without an image",
    ),
    pytest.param(
        'image = "echo"\nrequirements = "requirements.txt"',
        "worker.requirements",
        id="requirements with an image (a venv is for host processes)",
    ),
    pytest.param('image = "echo"\nentrypoint = []', "worker.entrypoint", id="an empty entrypoint"),
    pytest.param(
        'image = "echo"\n[worker.container]\npull = "sometimes"',
        "worker.container.pull",
        id="an unknown pull policy",
    ),
    pytest.param(
        'image = "echo"\n[worker.container]\nshm_size = "lots"',
        "worker.container.shm_size",
        id="a shm size that is not a size",
    ),
    pytest.param(
        'image = "echo"\n[worker.container]\nshm_size = 100',
        "worker.container.shm_size",
        id="a shm size under 1MiB",
    ),
    pytest.param(
        'image = "echo"\n[worker.container]\nextra_args = "--privileged"',
        "worker.container.extra_args",
        id="extra args that are not a list",
    ),
    pytest.param(
        'image = "echo"\n[worker.container]\npul = "always"',
        "worker.container.pul",
        id="a misspelt container key",
    ),
    pytest.param(
        'image = "echo"\nenv = { A = "x\\ny" }', "worker.env", id="a newline in an env value"
    ),
]


@pytest.mark.parametrize(("worker", "field"), INVALID)
def test_a_bad_image_field_is_named(tmp_path: Path, worker: str, field: str) -> None:
    with pytest.raises(SpecError) as raised:
        loads_spec(spec(worker), tmp_path / "e.toml")

    assert f"field '{field}'" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("python", ImageRef("python", "", ""), id="a bare name"),
        pytest.param("python:3.11-slim", ImageRef("python", "3.11-slim", ""), id="a tag"),
        pytest.param(
            "localhost:5000/a/b:v1", ImageRef("localhost:5000/a/b", "v1", ""), id="a port"
        ),
        pytest.param(f"x@{DIGEST}", ImageRef("x", "", DIGEST), id="a digest"),
    ],
)
def test_image_references_parse(text: str, expected: ImageRef) -> None:
    assert check_image_ref(text) == expected


def test_a_reference_is_pinned_keeping_its_tag() -> None:
    ref = check_image_ref("localhost/echo:v1")

    assert ref.with_digest(DIGEST) == f"localhost/echo:v1@{DIGEST}"
    assert check_image_ref(ref.with_digest(DIGEST)).pinned


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runq.toml"
    path.write_text(text)
    return path


def test_the_containers_table_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[containers]\nengine = "podman"\nnetwork = "bridge"\nimage_store_max = "50GB"\n'
        '[containers.registries.team]\nserver = "ghcr.io"\nusername = "bot"\n'
        'password_env = "GHCR_TOKEN"\n',
    )

    assert load_config(path).containers == ContainersConfig(
        engine="podman",
        network="bridge",
        registries={"team": RegistryLogin("ghcr.io", "bot", password_env="GHCR_TOKEN")},
        image_store_max_bytes=50 * 10**9,
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param('engine = "lxc"', "containers.engine", id="an unknown engine"),
        pytest.param('network = "none"', "containers.network", id="an unknown network mode"),
        pytest.param('engin = "podman"', "containers.engin", id="a misspelt key"),
        pytest.param('image_store_max = "big"', "containers.image_store_max", id="a bad size"),
        pytest.param(
            '[containers.registries.team]\nserver = "ghcr.io"\nusername = "bot"\n'
            'password = "hunter2"',
            "containers.registries.team.password",
            id="a password in the config file",
        ),
        pytest.param(
            '[containers.registries.team]\nserver = "ghcr.io"\nusername = "bot"\n',
            "containers.registries.team",
            id="a login without a secret source",
        ),
    ],
)
def test_a_bad_containers_table_is_named(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, f"[containers]\n{text}\n")

    with pytest.raises(SpecError) as raised:
        load_config(path)

    assert str(raised.value).startswith(f"{path}: ")
    assert f"field '{field}'" in str(raised.value)
