"""The container engine on this host: which one (podman first, docker as the fallback), the
config runq writes for it, and the `run` argv of a worker's container.

The argv builder is a pure function of a dialect and a request, tested table-driven; detection
and the config file are the only parts that look at the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runq.core.containers_config import ContainersConfig

# Where podman looks for an init binary when it is not on PATH (Debian ships catatonit there).
_INIT_PATHS = ("/usr/libexec/podman/catatonit", "/usr/bin/catatonit", "/usr/libexec/catatonit")


@dataclass(frozen=True)
class Dialect:
    """What differs between engines in the flags runq uses."""

    name: str
    gpu_flag: str  # "cdi": --device nvidia.com/gpu=N per GPU; "gpus": --gpus "device=N,M"
    host_alias: str  # the host's name from inside a bridged container
    bridge_args: tuple[str, ...]  # what makes host_alias resolve on a bridge
    # The container's output goes to the CLI's stdout, runq's worker log, and nowhere else (a
    # second copy in the engine's storage would grow uncapped). podman's passthrough hands the
    # log file itself to the container: no relay through conmon and the CLI per line.
    log_driver: str


DIALECTS: Mapping[str, Dialect] = {
    "podman": Dialect("podman", "cdi", "host.containers.internal", (), "passthrough"),
    "docker": Dialect(
        "docker",
        "gpus",
        "host.docker.internal",
        ("--add-host=host.docker.internal:host-gateway",),
        "none",
    ),
}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = True

    def arg(self) -> str:
        suffix = ",readonly" if self.read_only else ""
        return f"type=bind,source={self.source},destination={self.target}{suffix}"


@dataclass(frozen=True)
class RunRequest:
    """Everything that makes one worker's `run` command line."""

    name: str
    image: str
    env_file: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str = "host"
    shm_size: int = 8 * 2**30
    gpus: tuple[str, ...] = ()  # indices or UUIDs on the host
    mounts: tuple[Mount, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    command: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    stop_timeout_s: int = 5


def run_argv(dialect: Dialect, request: RunRequest) -> list[str]:
    """The arguments after the engine's binary that run a worker in the foreground.

    `--rm` removes the container when it ends; `--init` puts a reaper as PID 1 so SIGTERM
    reaches a handler that installs none; `--pull=never` because runq pulls before it runs
    (single-flight, timed). An entrypoint list becomes `--entrypoint FIRST` with the rest
    ahead of the command, which both engines read alike.

    >>> run_argv(DIALECTS["podman"], RunRequest("w1", "img", Path("/e"), gpus=("0",)))[-4:]
    ['--device', 'nvidia.com/gpu=0', '--pull=never', 'img']
    """
    argv = ["run", "--rm", "--init", "--name", request.name, "--env-file", str(request.env_file)]
    for key, value in sorted(request.labels.items()):
        argv += ["--label", f"{key}={value}"]
    argv += [f"--network={request.network}", f"--shm-size={request.shm_size}"]
    argv += [f"--stop-timeout={request.stop_timeout_s}", f"--log-driver={dialect.log_driver}"]
    if request.network == "bridge":
        argv += dialect.bridge_args
    for mount in request.mounts:
        argv += ["--mount", mount.arg()]
    if request.gpus and dialect.gpu_flag == "cdi":
        for gpu in request.gpus:
            argv += ["--device", f"nvidia.com/gpu={gpu}"]
    elif request.gpus:
        argv += ["--gpus", f'"device={",".join(request.gpus)}"']
    argv += list(request.extra_args)
    args = list(request.command)
    if request.entrypoint is not None:
        argv += ["--entrypoint", request.entrypoint[0]]
        args = [*request.entrypoint[1:], *args]
    return [*argv, "--pull=never", request.image, *args]


def podman_conf(limits: str, pid_max: int, runtime: str) -> str:
    """containers.conf for podman on this host, from /proc/self/limits' text.

    podman asks for nofile=1048576 by default, above the hard limit of most hosts, and root
    without CAP_SYS_RESOURCE cannot raise it: the container fails to start. The host's own
    hard limits are always allowed (nproc also at most pid_max, which runc enforces).

    >>> print(podman_conf("Max processes  96368  96368  processes\\n"
    ...                   "Max open files  1024  20000  files\\n", 32768, "runc"))
    [containers]
    default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
    <BLANKLINE>
    [engine]
    runtime = "runc"
    <BLANKLINE>
    """
    hard = {
        "nofile": _hard_limit(limits, "Max open files"),
        "nproc": _hard_limit(limits, "Max processes"),
    }
    if hard["nproc"] is not None:
        hard["nproc"] = min(hard["nproc"], pid_max)
    ulimits = ", ".join(f'"{name}={n}:{n}"' for name, n in hard.items() if n is not None)
    text = f"[containers]\ndefault_ulimits = [{ulimits}]\n"
    if runtime:
        text += f'\n[engine]\nruntime = "{runtime}"\n'
    return text


def _hard_limit(limits: str, label: str) -> int | None:
    for line in limits.splitlines():
        if line.startswith(label):
            parts = line[len(label) :].split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1])
    return None  # "unlimited": leave the engine's default


@dataclass(frozen=True)
class Engine:
    """A usable engine: its binary, the environment to call it with, and its dialect."""

    binary: str
    dialect: Dialect
    env: Mapping[str, str] = field(default_factory=dict)  # CONTAINERS_CONF for podman

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *args]

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}


class EngineUnavailable(Exception):
    """No usable engine; the message says how to get one."""


INSTALL_HINT = (
    "install podman (as root: apt-get install podman runc catatonit), or start dockerd and set "
    '[containers] engine = "docker" in the server config; `runq doctor` checks the host'
)


def detect_engine(config: ContainersConfig, state_dir: Path) -> Engine:
    """The engine the config asks for (auto: podman, else docker), ready to call.

    For podman, writes `state_dir/containers.conf` (runtime and ulimits for this host) and
    passes it as CONTAINERS_CONF: runq never edits /etc.

    Raises:
        EngineUnavailable: none found or it does not answer; the message says how to fix it.
    """
    names = ("podman", "docker") if config.engine == "auto" else (config.engine,)
    problems: list[str] = []
    for name in names:
        binary = shutil.which(name)
        if binary is None:
            problems.append(f"{name}: not found on PATH")
            continue
        engine = Engine(binary, DIALECTS[name], _engine_env(name, state_dir))
        problem = _answers(engine)
        if problem is None:
            return engine
        problems.append(f"{name}: {problem}")
    raise EngineUnavailable(f"no usable container engine ({'; '.join(problems)}): {INSTALL_HINT}")


def _engine_env(name: str, state_dir: Path) -> dict[str, str]:
    if name != "podman":
        return {}
    if os.environ.get("CONTAINERS_CONF"):
        return {}  # the user's own config wins
    # crun, podman's default, cannot run on hybrid cgroups; runc can everywhere it exists.
    runtime = "runc" if shutil.which("runc") else ""
    limits = Path("/proc/self/limits").read_text()
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text().strip() or 32768)
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "containers.conf"
    text = podman_conf(limits, pid_max, runtime)
    if not conf.exists() or conf.read_text() != text:
        tmp = conf.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(conf)
    return {"CONTAINERS_CONF": str(conf)}


def _answers(engine: Engine) -> str | None:
    """None when the engine answers `version`; else what it said."""
    try:
        done = subprocess.run(
            engine.argv("version", "--format", "{{.Server.Version}}"),
            env=engine.environ(),
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit code {done.returncode}"
    return None


def init_binary() -> str | None:
    """The init podman's `--init` runs (catatonit), or None when it is missing."""
    found = shutil.which("catatonit")
    return found or next((p for p in _INIT_PATHS if Path(p).exists()), None)
