"""Image workers: each worker a container, named and labelled by worker, endpoint and control
plane, driven by name (never by signalling the engine's CLI, whose death leaves the container
running under conmon).

The provisioner runs the engine's foreground `run` as the worker's process, so its output goes
to the worker's log like a process worker's and its exit is the worker's exit. Parking freezes
the container's cgroup (SIGSTOP of the CLI would not reach it); stopping and killing go through
the engine by name; a crashed control plane's leftovers are removed by label at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runq.core.config import ServerConfig
from runq.core.containers_config import RegistryLogin
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.errors import SpecError
from runq.fleet.container_host import (
    LABEL_ENDPOINT,
    LABEL_PLANE,
    LABEL_WORKER,
    container_name,
    event_time,
    freeze_value,
    freezer_of,
    plane_id,
    state_dir,
)
from runq.fleet.engine import Engine, EngineUnavailable, Mount, RunRequest, detect_engine, run_argv
from runq.fleet.image_build import ImageBuildError, build_image
from runq.fleet.images import (
    Acquired,
    ImageError,
    ImageStore,
    index_keys,
    read_index,
    run_engine,
)
from runq.fleet.worker_env import CONTROL_PLANE_MARKER, worker_env
from runq.models.cache import Pinned
from runq.models.env import model_env

log = logging.getLogger("runq.fleet")

RUNPOD_HUB_CACHE = "/runpod-volume/huggingface-cache/hub"  # where RunPod workers look
RUNPOD_VOLUME = "/runpod-volume"
ENGINE_FAILED = 125  # podman's and docker's exit code when they, not the container, fail


class ContainerError(Exception):
    """An image worker cannot start; the message says why (engine, image or env)."""


_engines: dict[tuple[str, Path], Engine] = {}


def engine_for(config: ServerConfig) -> Engine:
    """The engine of `config`, detected once per process (a refusal is re-checked each time:
    the user may have installed one since).

    Raises:
        EngineUnavailable: none usable; the message says how to fix it.
    """
    key = (config.containers.engine, state_dir(config.data_dir))
    if key not in _engines:
        _engines[key] = detect_engine(config.containers, key[1])
    return _engines[key]


def require_engine(spec: EndpointSpec, config: ServerConfig) -> None:
    """Refuse an image endpoint on a host that cannot run it.

    Raises:
        SpecError: the spec names an image and no engine is usable here (HTTP 400).
    """
    if not spec.worker.image:
        return
    where = spec.source_path or spec.name
    if spec.type == "load_balancer" and config.containers.network != "host":
        raise SpecError(
            f"{where}: field 'worker.image': a load_balancer image worker needs "
            '[containers] network = "host" (its port is not published on a bridge)'
        )
    if config.ray_address:
        return  # the engine runs on the Ray nodes: a node without one fails its worker, saying so
    try:
        engine_for(config)
    except EngineUnavailable as exc:
        raise SpecError(f"{where}: field 'worker.image': {exc}") from None


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """KEY=VALUE lines, 0600 from its creation: the worker's token never sits in argv or in a
    file others can read."""
    bad = [key for key, value in env.items() if "\n" in key + value or "=" in key or not key]
    if bad:
        raise ContainerError(f"variable {bad[0]!r}: an env file cannot hold it (newline or '=')")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.writelines(f"{key}={value}\n" for key, value in env.items())


def container_env(
    config: ServerConfig,
    spec: EndpointSpec,
    worker: Worker,
    held: Pinned | None,
    alias: str,
    endpoint_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The worker contract as a process worker gets it, adjusted for a container: GPUs are
    renumbered from 0 (only the granted ones exist inside), and on a bridge the control plane
    is reached by the engine's host alias instead of loopback."""
    env = contract_env(config, spec, worker, endpoint_env)
    if held is not None:
        env.update(model_env(held))
    return bridge_env(env, alias) if config.containers.network == "bridge" else env


def contract_env(
    config: ServerConfig,
    spec: EndpointSpec,
    worker: Worker,
    endpoint_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """`container_env` before what only the worker's host knows (its model's path, its
    engine's host alias): what a Ray node is sent."""
    gpus = worker.placement.gpu_indices if worker.placement else ()
    gpu_type = worker.placement.gpu_type if worker.placement else "cpu"
    # The endpoint's env with its secrets put in (`endpoint_env`), then the contract.
    endpoint = spec.worker.env if endpoint_env is None else endpoint_env
    env = {**endpoint, **worker_env(config, spec, worker, gpu_type)}
    env.pop(CONTROL_PLANE_MARKER, None)  # the label marks the container; this marks processes
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(gpus)))
    if worker.port is not None:
        env["PORT"] = str(worker.port)
        env["PORT_HEALTH"] = str(worker.health_port or worker.port)
    return env


def bridge_env(env: Mapping[str, str], alias: str) -> dict[str, str]:
    """`env` for a container on a bridge: loopback URLs point at the host's alias instead.

    >>> bridge_env({"U": "http://127.0.0.1:8000/v2"}, "host.containers.internal")
    {'U': 'http://host.containers.internal:8000/v2'}
    """
    found = dict(env)
    for loopback in ("://127.0.0.1:", "://localhost:"):
        found = {k: v.replace(loopback, f"://{alias}:") for k, v in found.items()}
    return found


def mounts(
    config: ServerConfig, spec: EndpointSpec, worker: Worker, held: Pinned | None
) -> tuple[Mount, ...]:
    """The host model cache at its own path (so RUNQ_MODEL_PATH and HF_HOME stay valid) and
    at RunPod's cache path, read-only; the endpoint's network volume at /runpod-volume."""
    return container_mounts(
        config.model_cache_dir,
        Path(held.path) if held is not None else None,
        _volume_path(config, spec, worker),
    )


def container_mounts(cache: Path, model_path: Path | None, volume: str | None) -> tuple[Mount, ...]:
    """`mounts` on the worker's host: its model `cache` folder (made if missing), the model's
    own path when outside it (a file:// or volume:// model), and the network `volume` at
    /runpod-volume, else the cache's hub at RunPod's cache path when there is one."""
    cache.mkdir(parents=True, exist_ok=True)
    found: list[Mount] = [Mount(str(cache), str(cache))]
    if model_path is not None and not model_path.is_relative_to(cache):
        found.append(Mount(str(model_path), str(model_path)))
    if volume is not None:
        # The hub cache is not mounted inside the volume: that would create its mount point
        # on the user's volume.
        found.append(Mount(volume, RUNPOD_VOLUME, read_only=False))
    elif (cache / "hub").is_dir():
        found.append(Mount(str(cache / "hub"), RUNPOD_HUB_CACHE))
    return tuple(found)


def _volume_path(config: ServerConfig, spec: EndpointSpec, worker: Worker) -> str | None:
    name = spec.compute.network_volume
    if not name or worker.placement is None:
        return None
    host = next((h for h in config.hosts if h.name == worker.placement.host), None)
    return host.volumes.get(name) if host is not None else None


@dataclass(frozen=True)
class Launch:
    """How the provisioner starts an image worker: the engine CLI's argv and environment."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path
    pulled: Acquired


class ContainerWorkers:
    """The image workers of one control plane on this host."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._dir = state_dir(config.data_dir)
        self._images: ImageStore | None = None
        self._freezers: dict[str, Path] = {}  # worker id -> its cgroup's freeze file
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchers: dict[str, asyncio.subprocess.Process] = {}
        self._builds: dict[str, asyncio.Lock] = {}  # endpoint -> its image build, one at a time
        self._pins: dict[str, tuple[EndpointSpec, Acquired]] = {}  # endpoint -> its deploy's image
        self._prepulls: dict[str, asyncio.Task[None]] = {}  # endpoint -> its deploy's pre-pull

    def engine(self) -> Engine:
        try:
            return engine_for(self._config)
        except EngineUnavailable as exc:
            raise ContainerError(str(exc)) from None

    @property
    def images(self) -> ImageStore:
        if self._images is None:
            self._images = ImageStore(self.engine(), self._dir)
        return self._images

    def held_keys(self) -> tuple[str, ...]:
        """The images this host holds, under every name placement may look for (from the
        store's index file: no engine call)."""
        return index_keys(read_index(self._dir))

    async def prepare(
        self,
        spec: EndpointSpec,
        worker: Worker,
        held: Pinned | None,
        endpoint_env: Mapping[str, str] | None = None,
    ) -> Launch:
        """Pull (or find) the image and write the env file; the argv that runs the worker.

        Raises:
            ContainerError: no engine, the image cannot be had, or the env cannot be written.
        """
        engine = self.engine()
        section = spec.worker.container
        worker.image_pull_started_at = time.time()
        pulled = await self._pinned_image(spec, self._login(spec))
        worker.image_pulled_at = time.time()
        if not pulled.pulled:  # the host held it: the image_pull phase is 0
            worker.image_pull_started_at = worker.image_pulled_at
        worker.image_pull_bytes = pulled.image.size if pulled.pulled else 0
        worker.image_digest = pulled.image.digest or pulled.image.id
        self._spawn(self._watch_start(worker))
        env_file = self._dir / "env" / f"{worker.id}.env"
        alias = engine.dialect.host_alias
        write_env_file(
            env_file, container_env(self._config, spec, worker, held, alias, endpoint_env)
        )
        request = RunRequest(
            name=container_name(worker.id),
            image=pulled.image.id or spec.worker.image,  # the exact bits just inspected
            env_file=env_file,
            labels={
                LABEL_WORKER: worker.id,
                LABEL_ENDPOINT: spec.name,
                LABEL_PLANE: plane_id(self._config.data_dir),
            },
            network=self._config.containers.network,
            shm_size=section.shm_size,
            gpus=tuple(str(i) for i in (worker.placement.gpu_indices if worker.placement else ())),
            mounts=mounts(self._config, spec, worker, held),
            entrypoint=spec.worker.entrypoint,
            command=spec.worker.command,
            extra_args=section.extra_args,
        )
        cli_env = {**engine.environ(), CONTROL_PLANE_MARKER: str(self._config.data_dir)}
        return Launch(
            tuple(engine.argv(*run_argv(engine.dialect, request))), cli_env, self._dir, pulled
        )

    def _login(self, spec: EndpointSpec) -> RegistryLogin | None:
        section = spec.worker.container
        if not section.registry:
            return None
        login = self._config.containers.registries.get(section.registry)
        if login is None:
            raise ContainerError(
                f"[worker.container] registry = {section.registry!r} is not in the server "
                f"config's [containers.registries]"
            )
        return login

    def prepull(self, spec: EndpointSpec) -> None:
        """Get the image of this deploy of `spec` in the background and pin the deploy to it
        (`_pinned_image`): its workers, started once it is here, pull nothing. A redeploy
        starts its own; the one of the definition it replaces ends alone."""
        task = asyncio.ensure_future(self._prepull(spec))
        self._prepulls[spec.name] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def prepulling(self, endpoint: str) -> bool:
        task = self._prepulls.get(endpoint)
        return task is not None and not task.done()

    def release(self, endpoint: str) -> None:
        """The endpoint is undeployed: its image is no longer pinned (the image-store budget
        may evict it once no container uses it)."""
        self._pins.pop(endpoint, None)
        self._prepulls.pop(endpoint, None)

    async def _prepull(self, spec: EndpointSpec) -> None:
        log.info("endpoint %s deployed: getting image %s", spec.name, spec.worker.image)
        try:
            got = await self._pinned_image(spec, self._login(spec))
        except ContainerError as exc:  # its first worker tries again and fails with the reason
            log.warning("endpoint %s: image not pre-pulled: %s", spec.name, exc)
            return
        how = f"pulled in {got.seconds:.1f}s" if got.pulled else "already on this host"
        log.info("endpoint %s: image %s %s", spec.name, got.image.id[:12], how)

    async def _pinned_image(self, spec: EndpointSpec, login: RegistryLogin | None) -> Acquired:
        """The image of this deploy of `spec`. The first worker resolves the reference (pulling
        as `pull` says) and pins the deploy to the image id it got: every later worker of that
        deploy runs the same bits even if the tag moves, and skips the registry. A redeploy
        (a new spec) resolves again."""
        pin = self._pins.get(spec.name)
        if pin is not None and pin[0] is spec:
            return Acquired(pin[1].image, pulled=False, seconds=0.0)
        ref = spec.worker.image
        try:
            if spec.worker.container.build:  # built from the worker folder, once per content
                async with self._builds.setdefault(spec.name, asyncio.Lock()):
                    ref, built = await asyncio.to_thread(build_image, self.engine(), spec)
                if built:
                    log.info("built image %s for %s", ref, spec.name)
            built_here = bool(spec.worker.container.build)
            pulled = await self.images.acquire(
                ref, spec.worker.container.pull, login, built=built_here
            )
        except (ImageError, ImageBuildError) as exc:
            raise ContainerError(str(exc)) from None
        self._pins[spec.name] = (spec, pulled)
        budget = self._config.containers.image_store_max_bytes
        if pulled.pulled and budget:
            pinned = {acquired.image.id for _, acquired in self._pins.values()}
            await self.images.evict(budget, pinned)  # the images of deployed endpoints stay
        return pulled

    async def _watch_start(self, worker: Worker) -> None:
        """Record when the engine started the container (the container_start phase ends),
        from the engine's own event; gives up after a few minutes."""
        since = f"{time.time() - 1:.3f}"
        args = ["events", "--since", since, "--format", "{{json .}}", "--filter", "event=start"]
        args += ["--filter", f"label={LABEL_WORKER}={worker.id}"]
        engine = self.engine()
        process = await asyncio.create_subprocess_exec(
            *engine.argv(*args),
            env=engine.environ(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._watchers[worker.id] = process
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 300)
            started = event_time(line.decode(errors="replace"))
            if started is not None:
                worker.container_started_at = started
        except TimeoutError:
            pass
        finally:
            self._watchers.pop(worker.id, None)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def park(self, worker_id: str) -> bool:
        """Freeze the container's cgroup (FlashBoot): a write to its freezer when known (a few
        ms), else the engine's `pause` in the background."""
        return self._freeze(worker_id, frozen=True)

    def revive(self, worker_id: str) -> bool:
        return self._freeze(worker_id, frozen=False)

    def _freeze(self, worker_id: str, frozen: bool) -> bool:
        path = self._freezers.get(worker_id)
        if path is not None:
            with contextlib.suppress(OSError):
                path.write_text(freeze_value(path, frozen))
                return True
        self._spawn(self._freeze_slowly(worker_id, frozen))
        return True

    async def _freeze_slowly(self, worker_id: str, frozen: bool) -> None:
        async with self._lock(worker_id):
            path = self._freezers.get(worker_id) or await self._find_freezer(worker_id)
            if path is not None:
                with contextlib.suppress(OSError):
                    path.write_text(freeze_value(path, frozen))
                    return
            verb = "pause" if frozen else "unpause"
            await run_engine(self.engine(), verb, container_name(worker_id), timeout=30)

    async def _find_freezer(self, worker_id: str) -> Path | None:
        code, out, _ = await run_engine(
            self.engine(),
            "inspect",
            "--format",
            "{{.State.Pid}}",
            container_name(worker_id),
            timeout=30,
        )
        pid = out.strip()
        if code != 0 or not pid.isdigit() or pid == "0":
            return None
        path = freezer_of(int(pid))
        if path is not None:
            self._freezers[worker_id] = path
        return path

    async def stop(self, worker_id: str, grace_s: float) -> None:
        """SIGTERM through the container's init, SIGKILL after the grace; returns when gone."""
        async with self._lock(worker_id):
            name = container_name(worker_id)
            self._thaw(worker_id)  # a frozen process cannot act on SIGTERM
            engine = self.engine()
            await run_engine(engine, "stop", "-t", str(round(grace_s)), name, timeout=grace_s + 30)
            await run_engine(engine, "rm", "-f", name, timeout=30)

    def kill(self, worker_id: str) -> None:
        """SIGKILL the container, now, in the background (the caller does not wait)."""
        self._thaw(worker_id)
        self._spawn(self._kill(worker_id))

    async def _kill(self, worker_id: str) -> None:
        await run_engine(self.engine(), "rm", "-f", container_name(worker_id), timeout=30)

    async def finished(self, worker_id: str, endpoint: str, code: int) -> None:
        """The worker's CLI ended: make sure its container is gone and drop its files. Exit
        125 is the engine's own failure (say, the pinned image was removed): the endpoint's
        next worker resolves its image again."""
        if code == ENGINE_FAILED:
            self._pins.pop(endpoint, None)
        self._freezers.pop(worker_id, None)
        self._locks.pop(worker_id, None)
        watcher = self._watchers.pop(worker_id, None)
        if watcher is not None and watcher.returncode is None:
            watcher.kill()  # the container never started
        with contextlib.suppress(FileNotFoundError):
            (self._dir / "env" / f"{worker_id}.env").unlink()
        with contextlib.suppress(ContainerError):
            await run_engine(self.engine(), "rm", "-f", container_name(worker_id), timeout=30)

    def _thaw(self, worker_id: str) -> None:
        path = self._freezers.get(worker_id)
        if path is not None:
            with contextlib.suppress(OSError):
                path.write_text(freeze_value(path, frozen=False))

    def _lock(self, worker_id: str) -> asyncio.Lock:
        return self._locks.setdefault(worker_id, asyncio.Lock())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
