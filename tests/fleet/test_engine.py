"""The engine's `run` argv and containers.conf: pure functions, one row per case."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from runq.fleet.engine import DIALECTS, Mount, RunRequest, podman_conf, run_argv
from runq.fleet.images import pull_argv

ENV = Path("/data/containers/env/w1.env")


def make_request(**overrides: Any) -> RunRequest:
    fields: dict[str, Any] = {"name": "runq-w1", "image": "localhost/echo:v1", "env_file": ENV}
    return RunRequest(**{**fields, **overrides})


def pairs(argv: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(argv))


CASES = [
    pytest.param(
        "podman",
        make_request(),
        {
            "contains": [("--name", "runq-w1"), ("--env-file", str(ENV))],
            "tail": ["localhost/echo:v1"],
        },
        id="the image runs last, with its own command, named and with its env file",
    ),
    pytest.param(
        "podman",
        make_request(gpus=("0", "GPU-1234")),
        {"contains": [("--device", "nvidia.com/gpu=0"), ("--device", "nvidia.com/gpu=GPU-1234")]},
        id="podman gets one CDI device per GPU, by index or UUID",
    ),
    pytest.param(
        "docker",
        make_request(gpus=("0", "2")),
        {"contains": [("--gpus", '"device=0,2"')]},
        id="docker gets --gpus with the GPUs as one device list",
    ),
    pytest.param(
        "podman",
        make_request(command=("python", "-u", "/handler.py")),
        {"tail": ["localhost/echo:v1", "python", "-u", "/handler.py"]},
        id="a command overrides the image's CMD",
    ),
    pytest.param(
        "docker",
        make_request(entrypoint=("/bin/sh", "-c"), command=("echo hi",)),
        {"contains": [("--entrypoint", "/bin/sh")], "tail": ["localhost/echo:v1", "-c", "echo hi"]},
        id="an entrypoint list: its head is --entrypoint, its rest precedes the command",
    ),
    pytest.param(
        "podman",
        make_request(labels={"io.runq.worker": "w1", "io.runq.endpoint": "e"}),
        {"contains": [("--label", "io.runq.endpoint=e"), ("--label", "io.runq.worker=w1")]},
        id="labels, sorted, so reaping by label finds the container",
    ),
    pytest.param(
        "podman",
        make_request(
            mounts=(Mount("/data/models", "/data/models"), Mount("/v", "/runpod-volume", False))
        ),
        {
            "contains": [
                ("--mount", "type=bind,source=/data/models,destination=/data/models,readonly"),
                ("--mount", "type=bind,source=/v,destination=/runpod-volume"),
            ]
        },
        id="the model cache read-only, a network volume writable",
    ),
    pytest.param(
        "docker",
        make_request(network="bridge"),
        {"has": ["--network=bridge", "--add-host=host.docker.internal:host-gateway"]},
        id="docker on a bridge learns the host's name",
    ),
    pytest.param(
        "docker",
        make_request(),
        {"has": ["--log-driver=none"]},
        id="docker keeps no copy of the output (it has no passthrough)",
    ),
    pytest.param(
        "podman",
        make_request(shm_size=2**31, extra_args=("--cap-drop", "ALL")),
        {
            "has": [
                "--shm-size=2147483648",
                "--network=host",
                "--cap-drop",
                "--init",
                "--rm",
                "--log-driver=passthrough",
            ]
        },
        id="shm size in bytes, host network, extra args passed through, --init, one log only",
    ),
]


@pytest.mark.parametrize(("engine", "request_", "expect"), CASES)
def test_run_argv(engine: str, request_: RunRequest, expect: dict[str, Any]) -> None:
    argv = run_argv(DIALECTS[engine], request_)

    assert argv[0] == "run"
    for pair in expect.get("contains", []):
        assert pair in pairs(argv)
    for flag in expect.get("has", []):
        assert flag in argv
    if "tail" in expect:
        assert argv[-len(expect["tail"]) :] == expect["tail"]
    # runq pulls before it runs (timed, single-flight): the engine must never pull on its own.
    assert argv[argv.index(request_.image) - 1] == "--pull=never"


def test_no_gpu_means_no_device_flag() -> None:
    argv = run_argv(DIALECTS["podman"], make_request())

    assert "--device" not in argv and "--gpus" not in argv


def test_the_env_never_reaches_argv() -> None:
    argv = run_argv(DIALECTS["podman"], make_request())

    assert not any(arg.startswith(("-e", "--env=")) for arg in argv if arg != "--env-file")


LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max processes             96368                96368                processes
Max open files            1024                 20000                files
"""


@pytest.mark.parametrize(
    ("limits", "pid_max", "runtime", "expected"),
    [
        pytest.param(
            LIMITS,
            32768,
            "runc",
            '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n'
            '[engine]\nruntime = "runc"\n',
            id="hard limits, nproc capped at pid_max, runc named",
        ),
        pytest.param(
            LIMITS.replace("96368                96368", "4096                 8192"),
            32768,
            "",
            '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]\n',
            id="nproc under pid_max kept; no runtime line when runc is absent",
        ),
        pytest.param(
            LIMITS.replace("1024                 20000", "unlimited            unlimited"),
            4194304,
            "runc",
            '[containers]\ndefault_ulimits = ["nproc=96368:96368"]\n\n[engine]\nruntime = "runc"\n',
            id="an unlimited nofile is left to the engine",
        ),
    ],
)
def test_podman_conf(limits: str, pid_max: int, runtime: str, expected: str) -> None:
    assert podman_conf(limits, pid_max, runtime) == expected


# --- the docker dialect, whole command lines --------------------------------------------------


def test_a_docker_worker_command_line_in_full() -> None:
    request = make_request(
        labels={"io.runq.worker": "w1"},
        network="bridge",
        shm_size=2**30,
        gpus=("1", "3"),
        mounts=(Mount("/data/models", "/data/models"),),
        entrypoint=("/bin/sh", "-c"),
        command=("python -u /handler.py",),
        extra_args=("--cap-drop", "ALL"),
    )

    assert run_argv(DIALECTS["docker"], request) == [
        "run",
        "--rm",
        "--init",  # docker's own tini
        "--name",
        "runq-w1",
        "--env-file",
        str(ENV),
        "--label",
        "io.runq.worker=w1",
        "--network=bridge",
        "--shm-size=1073741824",
        "--stop-timeout=5",
        "--log-driver=none",
        "--add-host=host.docker.internal:host-gateway",
        "--mount",
        "type=bind,source=/data/models,destination=/data/models,readonly",
        "--gpus",
        '"device=1,3"',  # one argument, quoted: docker splits --gpus on commas otherwise
        "--cap-drop",
        "ALL",
        "--entrypoint",
        "/bin/sh",
        "--pull=never",
        "localhost/echo:v1",
        "-c",
        "python -u /handler.py",
    ]


@pytest.mark.parametrize(
    ("engine", "network", "absent"),
    [
        pytest.param("docker", "host", "--add-host", id="docker on the host network: no alias"),
        pytest.param("podman", "bridge", "--add-host", id="podman resolves its alias itself"),
        pytest.param("docker", "host", "--device", id="docker never gets CDI device flags"),
    ],
)
def test_what_a_dialect_leaves_out(engine: str, network: str, absent: str) -> None:
    argv = run_argv(DIALECTS[engine], make_request(network=network, gpus=("0",)))

    assert not any(arg.startswith(absent) for arg in argv)


AUTH = Path("/data/containers/auth/reg.example/config.json")


@pytest.mark.parametrize(
    ("engine", "ref", "auth", "args", "env"),
    [
        pytest.param(
            "podman",
            "reg.example/w:1",
            None,
            ["pull", "--quiet", "reg.example/w:1"],
            {},
            id="podman, a registry with TLS, no login",
        ),
        pytest.param(
            "podman",
            "127.0.0.1:5000/w:1",
            AUTH,
            [
                "pull",
                "--quiet",
                "--tls-verify=false",
                "--authfile",
                str(AUTH),
                "127.0.0.1:5000/w:1",
            ],
            {},
            id="podman, a loopback registry without TLS, the login as --authfile",
        ),
        pytest.param(
            "docker",
            "127.0.0.1:5000/w:1",
            AUTH,
            ["pull", "--quiet", "127.0.0.1:5000/w:1"],
            {"DOCKER_CONFIG": str(AUTH.parent)},
            id="docker: no --tls-verify flag (it trusts loopback), the login's folder by env",
        ),
        pytest.param(
            "docker",
            "reg.example/w@sha256:" + "a" * 64,
            None,
            ["pull", "--quiet", "reg.example/w@sha256:" + "a" * 64],
            {},
            id="docker, a pinned digest as it is",
        ),
    ],
)
def test_pull_argv(
    engine: str, ref: str, auth: Path | None, args: list[str], env: dict[str, str]
) -> None:
    assert pull_argv(DIALECTS[engine], ref, auth) == (args, env)
