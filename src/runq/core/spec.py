"""Endpoint specs: loaded from TOML, validated with errors that name the file and the field."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from runq.core.durations import parse_duration
from runq.core.image_ref import check_image_ref
from runq.core.model_source import HF, check_sha256, parse_model_source
from runq.core.sizes import parse_size
from runq.errors import SpecError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ENDPOINT_TYPES = ("queue", "load_balancer")
SCALERS = ("queue_delay", "request_count", "slo", "histogram")
MAX_EXECUTION_TIMEOUT_S = 24 * 3600.0
MIN_TTL_S = 10.0
# Upper bounds (README, "Describe an endpoint"): far past any real endpoint, and each a value
# the scheduler, the store (a 64-bit integer column) and the clock arithmetic can all hold.
MAX_DURATION_S = 7 * 86400.0  # every duration; a job's ttl as in a RunPod policy
MAX_WORKERS = 1000  # active_workers, max_workers
MAX_REQUESTS_PER_WORKER = 10_000
MAX_GPUS_PER_WORKER = 64
MAX_RETRIES = 100
MAX_QUEUE = 10**9
MAX_PORT = 65535

PULL_POLICIES = ("missing", "always", "never")
DEFAULT_SHM_BYTES = 8 * 2**30  # an engine's 64 MB /dev/shm breaks PyTorch's DataLoader

T = TypeVar("T")


@dataclass(frozen=True)
class ContainerSection:
    """`[worker.container]`: how an image worker's container is pulled and run."""

    pull: str = "missing"  # "missing" | "always" | "never"
    shm_size: int = DEFAULT_SHM_BYTES
    registry: str = ""  # names a [containers.registries.NAME] of the server config
    extra_args: tuple[str, ...] = ()  # given to `podman run` / `docker run` as they are
    build: str = ""  # a Containerfile in the worker's dir: the image is built from the folder


@dataclass(frozen=True)
class WorkerSection:
    command: tuple[str, ...]  # with `image`: overrides the image's CMD; () keeps it
    dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    requirements: str | None = None
    port: int | None = None
    health_port: int | None = None
    build: tuple[str, ...] = ()  # run once by `runq bundle build`, in `dir`, on the bundle's venv
    image: str = ""  # a container image: the worker runs in it (RunPod's unit of deployment)
    entrypoint: tuple[str, ...] | None = None  # overrides the image's; None keeps it
    container: ContainerSection = field(default_factory=ContainerSection)


@dataclass(frozen=True)
class ComputeSection:
    gpu: tuple[str, ...] = ("cpu",)
    gpu_types: tuple[str, ...] = ()
    gpus_per_worker: int = 1
    data_centers: tuple[str, ...] = ()
    cuda_versions: tuple[str, ...] = ()
    network_volume: str = ""


@dataclass(frozen=True)
class ScalingSection:
    active_workers: int = 0
    max_workers: int = 3
    idle_timeout_s: float = 5.0
    scaler: str = "queue_delay"
    queue_delay_s: float = 4.0
    requests_per_worker: int = 4
    flashboot: bool = True
    init_timeout_s: float = 420.0
    p95_delay_target_s: float = 10.0  # scaler "slo": the p95 queue delay to stay under


@dataclass(frozen=True)
class JobsSection:
    execution_timeout_s: float | None = 600.0  # None: off
    ttl_s: float = 86400.0
    max_retries: int = 3
    max_queue: int = 0  # /run and /runsync answer 429 while this many jobs wait; 0: no limit


@dataclass(frozen=True)
class ModelSection:
    source: str = ""
    revision: str = ""
    sha256: str = ""
    preload: bool = False


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint, as its TOML file describes it."""

    name: str
    worker: WorkerSection
    type: str = "queue"
    compute: ComputeSection = field(default_factory=ComputeSection)
    scaling: ScalingSection = field(default_factory=ScalingSection)
    jobs: JobsSection = field(default_factory=JobsSection)
    model: ModelSection | None = None
    source_path: Path | None = None


class _Reader:
    """Reads one TOML table, remembering the file and section for error messages."""

    def __init__(self, where: str, section: str, table: Mapping[str, Any]) -> None:
        self.where = where
        self.section = section
        self.table = dict(table)
        self.seen: set[str] = set()

    def error(self, key: str, message: str) -> SpecError:
        dotted = f"{self.section}.{key}" if self.section else key
        return SpecError(f"{self.where}: field '{dotted}': {message}")

    def get(self, key: str, kind: type[T], default: T) -> T:
        self.seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # type: ignore[return-value]
        if not ok:
            raise self.error(key, f"expected {kind.__name__}, got {value!r}")
        return value  # type: ignore[no-any-return]

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(key, list, list(default))
        if not all(isinstance(item, str) for item in value):
            raise self.error(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def duration(self, key: str, default: float) -> float:
        self.seen.add(key)
        if key not in self.table:
            return default
        try:
            seconds = parse_duration(self.table[key])
        except ValueError as exc:
            raise self.error(key, str(exc)) from None
        except OverflowError:  # an int past a float's range
            seconds = math.inf
        # A string of 309 digits or more parses as infinity.
        self.check(key, math.isfinite(seconds), "too large for a duration")
        self.check(key, seconds <= MAX_DURATION_S, f"at most 7d, got {seconds:g}s")
        return seconds

    def check(self, key: str, ok: bool, message: str) -> None:
        if not ok:
            raise self.error(key, message)

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (check the spelling; see docs)")

    def sub(self, key: str) -> _Reader:
        self.seen.add(key)
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {value!r}")
        return _Reader(self.where, f"{self.section}.{key}" if self.section else key, value)


def _positive_int(reader: _Reader, key: str, default: int, maximum: int, minimum: int = 0) -> int:
    value = reader.get(key, int, default)
    reader.check(key, value >= minimum, f"must be at least {minimum}, got {value}")
    # A TOML integer may have up to 4300 digits: say how many, not print them all.
    shown = value if value < 10**20 else f"a number of {len(str(value))} digits"
    reader.check(key, value <= maximum, f"must be at most {maximum}, got {shown}")
    return value


def _port(reader: _Reader, key: str) -> int | None:
    if key not in reader.table:
        reader.seen.add(key)
        return None
    return _positive_int(reader, key, 0, MAX_PORT, minimum=1)


def _no_nul(reader: _Reader, key: str, *texts: str) -> None:
    # The OS takes these as C strings: a NUL would fail when the worker starts, not here.
    reader.check(key, not any("\0" in text for text in texts), "must not contain a NUL character")


def _argv(reader: _Reader, key: str) -> tuple[str, ...]:
    raw = reader.table.get(key)
    reader.seen.add(key)
    if isinstance(raw, str):
        argv: tuple[str, ...] = tuple(raw.split())
    elif isinstance(raw, list) and all(isinstance(c, str) for c in raw):
        argv = tuple(raw)
    else:
        raise reader.error(key, f"expected a list of strings, got {raw!r}")
    reader.check(key, len(argv) > 0, "must not be empty")
    _no_nul(reader, key, *argv)
    return argv


def _parse_container(reader: _Reader) -> ContainerSection:
    pull = reader.get("pull", str, "missing")
    reader.check("pull", pull in PULL_POLICIES, f"must be one of {', '.join(PULL_POLICIES)}")
    reader.seen.add("shm_size")
    try:
        shm = parse_size(reader.table.get("shm_size", DEFAULT_SHM_BYTES))
    except ValueError as exc:
        raise reader.error("shm_size", str(exc)) from None
    reader.check("shm_size", shm >= 2**20, "must be at least 1MiB")
    registry = reader.get("registry", str, "")
    extra = reader.strings("extra_args", ())
    build = reader.get("build", str, "")
    _no_nul(reader, "extra_args", registry, build, *extra)
    reader.check("build", not build or pull != "always", "a built image cannot be pulled")
    reader.finish()
    return ContainerSection(
        pull="never" if build else pull,
        shm_size=shm,
        registry=registry,
        extra_args=extra,
        build=build,
    )


def _parse_image(
    reader: _Reader, name: str
) -> tuple[str, tuple[str, ...] | None, ContainerSection]:
    """`image`, `entrypoint` and `[worker.container]`; the last two need an image, named or
    built (`[worker.container] build`: the image is localhost/runq-NAME, tagged when built)."""
    table = reader.table.get("container")
    builds = isinstance(table, dict) and bool(table.get("build"))
    reader.check(
        "image", not (builds and "image" in reader.table), "give an image or a build, not both"
    )
    image = f"localhost/runq-{name}" if builds else reader.get("image", str, "")
    reader.seen.add("image")
    if image:
        try:
            check_image_ref(image)
        except ValueError as exc:
            raise reader.error("image", str(exc)) from None
    entrypoint = _argv(reader, "entrypoint") if "entrypoint" in reader.table else None
    for key in ("entrypoint", "container"):
        reader.check(key, bool(image) or key not in reader.table, "needs [worker] image")
    for key in ("requirements", "build"):
        reader.check(
            key,
            not image or key not in reader.table,
            "is for a host process's venv: an image worker carries its packages in the image",
        )
    container = _parse_container(reader.sub("container"))
    return image, entrypoint, container


def _parse_worker(
    reader: _Reader, base_dir: Path, endpoint_type: str, name: str = ""
) -> WorkerSection:
    image, entrypoint, container = _parse_image(reader, name)
    if image and "command" not in reader.table:
        command: tuple[str, ...] = ()  # the image's own CMD
    else:
        command = _argv(reader, "command")
    raw_dir = reader.get("dir", str, ".")
    _no_nul(reader, "dir", raw_dir)
    try:
        directory = (base_dir / raw_dir).resolve()
    except (OSError, ValueError) as exc:  # e.g. a lone surrogate cannot be a file name
        raise reader.error("dir", f"not a usable path: {exc}") from None
    env = reader.get("env", dict, {})
    for key, value in env.items():
        reader.check("env", isinstance(value, str), f"value of {key!r} must be a string")
        reader.check("env", "=" not in key, f"variable name {key!r} must not contain '='")
        _no_nul(reader, "env", key, value)
    reader.check(
        "env",
        not image or not any("\n" in key + value for key, value in env.items()),
        "an image worker's variables go through an env file: no newlines in names or values",
    )
    requirements = reader.get("requirements", str, "") or None
    raw_build = reader.get("build", list, [])
    build = tuple(raw_build)
    if not all(isinstance(part, str) and part for part in build):
        raise reader.error("build", f"expected a list of non-empty strings, got {raw_build!r}")
    _no_nul(reader, "build", *build)
    reader.check(
        "build",
        not build or requirements is not None,
        "a build step runs in the bundle's venv: declare requirements too",
    )
    port = _port(reader, "port")
    health_port = _port(reader, "health_port")
    if endpoint_type == "load_balancer":
        reader.check("port", port is not None, "a load_balancer endpoint needs a worker port")
    reader.finish()
    return WorkerSection(
        command,
        directory,
        dict(env),
        requirements,
        port,
        health_port or port,
        build,
        image=image,
        entrypoint=entrypoint,
        container=container,
    )


def _parse_scaling(reader: _Reader) -> ScalingSection:
    active = _positive_int(reader, "active_workers", 0, MAX_WORKERS)
    maximum = _positive_int(reader, "max_workers", 3, MAX_WORKERS)
    reader.check("max_workers", maximum >= max(active, 1), "must be at least active_workers and 1")
    scaler = reader.get("scaler", str, "queue_delay")
    reader.check("scaler", scaler in SCALERS, f"must be one of {', '.join(SCALERS)}")
    section = ScalingSection(
        active_workers=active,
        max_workers=maximum,
        idle_timeout_s=reader.duration("idle_timeout", 5.0),
        scaler=scaler,
        queue_delay_s=reader.duration("queue_delay", 4.0),
        requests_per_worker=_positive_int(
            reader, "requests_per_worker", 4, MAX_REQUESTS_PER_WORKER, minimum=1
        ),
        flashboot=reader.get("flashboot", bool, True),
        init_timeout_s=reader.duration("init_timeout", 420.0),
        p95_delay_target_s=_p95_target(reader, scaler),
    )
    reader.finish()
    return section


def _p95_target(reader: _Reader, scaler: str) -> float:
    target = reader.duration("p95_delay_target", 10.0)
    reader.check("p95_delay_target", target > 0, f"must be more than 0s, got {target:g}s")
    reader.check(
        "p95_delay_target",
        scaler == "slo" or "p95_delay_target" not in reader.table,
        f'is read only by scaler = "slo" (this endpoint uses "{scaler}")',
    )
    return target


def _parse_jobs(reader: _Reader) -> JobsSection:
    timeout: float | None = reader.duration("execution_timeout", 600.0)
    reader.check(
        "execution_timeout", timeout is None or timeout <= MAX_EXECUTION_TIMEOUT_S, "at most 24h"
    )
    if timeout == 0:
        timeout = None
    ttl = reader.duration("ttl", 86400.0)
    reader.check("ttl", ttl >= MIN_TTL_S, f"must be at least 10s, got {ttl:g}s")
    section = JobsSection(
        timeout,
        ttl,
        _positive_int(reader, "max_retries", 3, MAX_RETRIES),
        max_queue=_positive_int(reader, "max_queue", 0, MAX_QUEUE),
    )
    reader.finish()
    return section


def _parse_compute(reader: _Reader) -> ComputeSection:
    section = ComputeSection(
        gpu=reader.strings("gpu", ("cpu",)),
        gpu_types=reader.strings("gpu_types", ()),
        gpus_per_worker=_positive_int(reader, "gpus_per_worker", 1, MAX_GPUS_PER_WORKER, minimum=1),
        data_centers=reader.strings("data_centers", ()),
        cuda_versions=reader.strings("cuda_versions", ()),
        network_volume=reader.get("network_volume", str, ""),
    )
    reader.finish()
    return section


def _parse_model(reader: _Reader) -> ModelSection:
    source = reader.get("source", str, "")
    revision = reader.get("revision", str, "")
    sha256 = reader.get("sha256", str, "")
    try:
        kind = parse_model_source(source).kind if source else ""
    except ValueError as exc:
        raise reader.error("source", str(exc)) from None
    try:
        sha256 = check_sha256(sha256)
    except ValueError as exc:
        raise reader.error("sha256", str(exc)) from None
    _no_nul(reader, "revision", revision)
    # A repo is many files: the hub's per-file hashes verify it, one digest cannot.
    reader.check("sha256", not (sha256 and kind == HF), "is for single-file sources, not hf://")
    section = ModelSection(
        source=source, revision=revision, sha256=sha256, preload=reader.get("preload", bool, False)
    )
    reader.finish()
    return section


def parse_spec(data: Mapping[str, Any], base_dir: Path, where: str) -> EndpointSpec:
    """Build a spec from parsed TOML. `where` names the file in error messages."""
    top = _Reader(where, "", data)
    name = top.get("name", str, "")
    top.check(
        "name", bool(NAME_PATTERN.fullmatch(name)), f"must match [a-z0-9-]{{1,64}}, got {name!r}"
    )
    endpoint_type = top.get("type", str, "queue")
    top.check("type", endpoint_type in ENDPOINT_TYPES, f"must be one of {ENDPOINT_TYPES}")
    if "worker" not in data:
        raise top.error(
            "worker", "missing: an endpoint needs a [worker] table with a command or an image"
        )
    sections: dict[str, Callable[[_Reader], Any]] = {
        "compute": _parse_compute,
        "scaling": _parse_scaling,
        "jobs": _parse_jobs,
    }
    parsed = {key: parse(top.sub(key)) for key, parse in sections.items()}
    model = _parse_model(top.sub("model")) if "model" in data else None
    worker = _parse_worker(top.sub("worker"), base_dir, endpoint_type, name)
    top.finish()
    return EndpointSpec(
        name=name,
        type=endpoint_type,
        worker=worker,
        model=model,
        **parsed,
    )


def resolve_spec_path(path: Path) -> Path:
    """A directory means the `endpoint.toml` inside it (spec: CLI)."""
    return path / "endpoint.toml" if path.is_dir() else path


def load_spec(path: Path | str) -> EndpointSpec:
    """Load and validate an endpoint file.

    Raises:
        SpecError: the file is missing, not TOML, or a field is wrong; the message names it.
    """
    file = resolve_spec_path(Path(path)).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{file}: no such endpoint file") from None
    except OSError as exc:
        raise SpecError(f"{file}: cannot read: {exc.strerror}") from None
    return loads_spec(text, file)


def loads_spec(text: str, file: Path) -> EndpointSpec:
    """Validate endpoint TOML text that came from `file` (used for paths and messages)."""
    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an int past Python's 4300-digit limit
        raise SpecError(f"{file}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise SpecError(f"{file}: not valid TOML: arrays or tables nested too deeply") from None
    spec = parse_spec(data, file.parent, str(file))
    return EndpointSpec(**{**spec.__dict__, "source_path": file})
