"""`runq doctor`: can this host run image workers? Each check says what it found and, when it
fails, the command that fixes it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runq.core.config import ServerConfig
from runq.fleet.container_host import state_dir
from runq.fleet.engine import INSTALL_HINT, Engine, EngineUnavailable, detect_engine, init_binary

CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
PODMAN_4_MAX_CDI = (0, 5, 0)  # podman 4.3 rejects specs above this ("unresolvable CDI devices")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    found: str
    fix: str = ""
    required: bool = True  # a failed optional check (GPUs) does not fail the doctor


@dataclass(frozen=True)
class CdiSpec:
    path: Path
    version: tuple[int, ...]
    kind: str


def parse_cdi(path: Path, text: str) -> CdiSpec | None:
    """The version and kind of a CDI spec (YAML or JSON), read without a YAML parser: both
    are top-level scalars.

    >>> parse_cdi(Path("x.yaml"), 'cdiVersion: "0.5.0"\\nkind: nvidia.com/gpu\\n')
    CdiSpec(path=PosixPath('x.yaml'), version=(0, 5, 0), kind='nvidia.com/gpu')
    """
    version = re.search(r'"?cdiVersion"?\s*:\s*"?([0-9.]+)"?', text)
    kind = re.search(r'"?kind"?\s*:\s*"?([A-Za-z0-9._/-]+)"?', text)
    if version is None or kind is None:
        return None
    return CdiSpec(path, tuple(int(p) for p in version.group(1).split(".") if p), kind.group(1))


def cdi_specs(dirs: tuple[Path, ...] = CDI_DIRS) -> list[CdiSpec]:
    found: list[CdiSpec] = []
    for folder in dirs:
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.suffix in (".yaml", ".yml", ".json"):
                spec = parse_cdi(path, path.read_text(errors="replace"))
                if spec is not None:
                    found.append(spec)
    return found


def _engine_info(engine: Engine, template: str) -> str:
    done = subprocess.run(
        engine.argv("info", "--format", template),
        env=engine.environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def _cgroups() -> str:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "v2 (unified)"
    if Path("/sys/fs/cgroup/unified").is_dir():
        return "hybrid (v1 controllers, v2 mounted)"
    return "v1"


def has_gpus() -> bool:
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def run_checks(config: ServerConfig) -> list[Check]:
    checks: list[Check] = []
    try:
        engine = detect_engine(config.containers, state_dir(config.data_dir))
    except EngineUnavailable as exc:
        return [Check("engine", False, str(exc).split(": install")[0], INSTALL_HINT)]
    name = engine.dialect.name
    conf = engine.env.get("CONTAINERS_CONF", "")
    checks.append(
        Check("engine", True, f"{name} at {engine.binary}" + (f", {conf}" if conf else ""))
    )
    cgroups = _cgroups()
    if name == "podman":
        runtime = _engine_info(engine, "{{.Host.OCIRuntime.Name}}")
        bad = runtime == "crun" and cgroups.startswith("hybrid")
        checks.append(
            Check(
                "runtime",
                bool(runtime) and not bad,
                f"{runtime or 'unknown'} on cgroups {cgroups}",
                "apt-get install runc (crun cannot run on hybrid cgroups)"
                if bad or not runtime
                else "",
            )
        )
        init = init_binary()
        checks.append(
            Check(
                "--init",
                init is not None,
                init or "no catatonit",
                "" if init else "apt-get install catatonit (SIGTERM must reach the worker)",
            )
        )
    specs = cdi_specs()
    too_new = [s for s in specs if name == "podman" and s.version > PODMAN_4_MAX_CDI]
    gpu_specs = [s for s in specs if s.kind == "nvidia.com/gpu"]
    gpus = has_gpus()
    if name == "podman":
        found = ", ".join(f"{s.kind} in {s.path} (v{'.'.join(map(str, s.version))})" for s in specs)
        fix = ""
        if too_new:
            fix = f'set cdiVersion: "0.5.0" in {too_new[0].path} (podman 4 reads up to 0.5.0)'
        elif gpus and not gpu_specs:
            fix = "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (nvidia-container-toolkit)"
        checks.append(
            Check(
                "GPUs (CDI)",
                not fix,
                found or ("no CDI spec" + (", NVIDIA GPUs present" if gpus else ", no GPU here")),
                fix,
                required=gpus,
            )
        )
    else:
        checks.append(
            Check(
                "GPUs",
                True,
                "docker: --gpus (NVIDIA runtime)" if gpus else "no GPU here",
                required=False,
            )
        )
    return checks
