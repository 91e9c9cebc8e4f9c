"""Image workers on a Ray node: the node's image store (one actor per node: pulls are single-
flight per node, its index is the node's own) and the container one worker actor runs there,
driven by name as on one machine (runq.fleet.containers): frozen through its cgroup, stopped
and removed through the engine, never by signalling the engine's CLI.

Node side, like runq.fleet.ray_actor; the control plane's side is runq.fleet.ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from runq.core.containers_config import ContainersConfig, RegistryLogin
from runq.core.spec import EndpointSpec
from runq.fleet.container_host import (
    LABEL_WORKER,
    event_time,
    freeze_value,
    freezer_of,
    reap_containers,
    state_dir,
)
from runq.fleet.containers import bridge_env, container_mounts, write_env_file
from runq.fleet.engine import Engine, EngineUnavailable, RunRequest, detect_engine, run_argv
from runq.fleet.image_build import ImageBuildError, build_image
from runq.fleet.images import Acquired, ImageError, ImageStore
from runq.fleet.worker_env import CONTROL_PLANE_MARKER

START_EVENT_WAIT_S = 300.0  # the container_start phase is left unknown past this


@dataclass(frozen=True)
class ContainerRequest:
    """What a worker actor needs to run its container on its node (picklable). `run` is the
    control plane's; its env file, mounts and (for Ray's own GPUs) GPUs are the node's."""

    run: RunRequest
    containers: ContainersConfig
    data_dir: str  # the node's runq data dir: the same path as the control plane's
    cache_dir: str  # the node's model cache
    volume: str | None = None  # the endpoint's network volume's path on the node


class NodeImages:
    """One node's images (a Ray async actor, one per node and control plane). Created before
    the first image worker on its node: it removes the containers a crashed control plane on
    the same data dir left there, but those of `keep` (the running one's workers)."""

    def __init__(self, data_dir: str, containers: ContainersConfig, keep: list[str]) -> None:
        self.problem = ""
        self.store: ImageStore | None = None
        self.engine: Engine | None = None
        self.builds: dict[str, asyncio.Lock] = {}
        state = state_dir(Path(data_dir))
        try:
            self.engine = detect_engine(containers, state)
        except EngineUnavailable as exc:
            self.problem = f"on this Ray node: {exc}"
            return
        reap_containers(Path(data_dir), keep)
        self.store = ImageStore(self.engine, state)

    async def acquire(
        self,
        ref: str,
        policy: str,
        login: RegistryLogin | None,
        build: EndpointSpec | None,
        budget: int,
        pinned: list[str],
    ) -> tuple[Acquired | None, str]:
        """(the image, "") or (None, why not). `build`: the endpoint whose worker folder (at
        the same path on this node) is built into the image first; `budget` and `pinned`: the
        image-store budget, applied after a pull, and the image ids it must keep."""
        if self.store is None or self.engine is None:
            return None, self.problem
        try:
            if build is not None:
                async with self.builds.setdefault(build.name, asyncio.Lock()):
                    ref, _ = await asyncio.to_thread(build_image, self.engine, build)
            got = await self.store.acquire(ref, policy, login, built=build is not None)
        except (ImageError, ImageBuildError) as exc:
            return None, str(exc)
        if got.pulled and budget:
            await self.store.evict(budget, {*pinned, got.image.id})
        return got, ""


class NodeContainer:
    """One worker's container on this node."""

    def __init__(self, request: ContainerRequest) -> None:
        self.request = request
        self.state = state_dir(Path(request.data_dir))
        self.engine = detect_engine(request.containers, self.state)
        self.name = request.run.name
        self.env_file = self.state / "env" / f"{self.name}.env"
        self.freezer: Path | None = None
        self.started_at: float | None = None
        self._started = threading.Event()
        self._watcher: subprocess.Popen[bytes] | None = None
        self._freezing = threading.Lock()
        self._last_order = 0

    def prepare(
        self, env: dict[str, str], model_path: Path | None, ray_gpus: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        """Write the env file (0600); the engine CLI's argv and environment that run it."""
        request = self.request
        if request.containers.network == "bridge":
            env = bridge_env(env, self.engine.dialect.host_alias)
        write_env_file(self.env_file, env)
        mounts = container_mounts(Path(request.cache_dir), model_path, request.volume)
        run = dataclasses.replace(
            request.run,
            env_file=self.env_file,
            mounts=(*mounts, *request.run.mounts),
            # Ray's own GPUs: the ones Ray gave the actor, by the node's index.
            gpus=tuple(ray_gpus) or request.run.gpus,
        )
        cli_env = {**self.engine.environ(), CONTROL_PLANE_MARKER: request.data_dir}
        return self.engine.argv(*run_argv(self.engine.dialect, run)), cli_env

    def watch_start(self, since: float) -> None:
        """Note when the engine started the container (its start event), in a thread."""
        worker = self.request.run.labels.get(LABEL_WORKER, "")
        args = ["events", "--since", f"{since - 1:.3f}", "--format", "{{json .}}"]
        args += ["--filter", "event=start", "--filter", f"label={LABEL_WORKER}={worker}"]
        self._watcher = subprocess.Popen(
            self.engine.argv(*args),
            env=self.engine.environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        timer = threading.Timer(START_EVENT_WAIT_S, self._end_watch)
        timer.daemon = True
        timer.start()

        def read(process: subprocess.Popen[bytes] = self._watcher) -> None:
            assert process.stdout is not None
            self.started_at = event_time(process.stdout.readline().decode(errors="replace"))
            self._started.set()
            timer.cancel()
            self._end_watch()

        threading.Thread(target=read, daemon=True).start()

    def started(self, timeout: float) -> float | None:
        self._started.wait(timeout)
        return self.started_at

    def _end_watch(self) -> None:
        watcher = self._watcher
        if watcher is not None and watcher.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                watcher.kill()
            watcher.wait()

    def freeze(self, frozen: bool, order: int = 0) -> bool:
        """Freeze or thaw its cgroup: a write to the freezer (found once), else the engine's
        pause / unpause. Orders arrive on threads of their own: one older than the last
        applied (`order`, counted by the control plane) is dropped."""
        with self._freezing:
            if order and order < self._last_order:
                return False
            self._last_order = order
            return self._freeze(frozen)

    def _freeze(self, frozen: bool) -> bool:
        path = self.freezer or self._find_freezer()
        if path is not None:
            with contextlib.suppress(OSError):
                path.write_text(freeze_value(path, frozen))
                return True
        done = self._engine("pause" if frozen else "unpause", self.name, timeout=30)
        return done == 0

    def _find_freezer(self) -> Path | None:
        done = subprocess.run(
            self.engine.argv("inspect", "--format", "{{.State.Pid}}", self.name),
            env=self.engine.environ(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        pid = done.stdout.strip()
        if done.returncode == 0 and pid.isdigit() and pid != "0":
            self.freezer = freezer_of(int(pid))
        return self.freezer

    def stop(self, grace_s: float) -> None:
        """SIGTERM through the container's init, SIGKILL after the grace; then removed."""
        self._thaw()
        self._engine("stop", "-t", str(round(grace_s)), self.name, timeout=grace_s + 30)
        self.remove()

    def remove(self) -> None:
        self._thaw()
        self._engine("rm", "-f", self.name, timeout=30)

    def finished(self) -> None:
        """Its CLI ended: the container and its env file go; the start watch ends."""
        self.remove()
        self._end_watch()
        self._started.set()
        with contextlib.suppress(FileNotFoundError):
            self.env_file.unlink()

    def _thaw(self) -> None:
        if self.freezer is not None:
            with contextlib.suppress(OSError):
                self.freezer.write_text(freeze_value(self.freezer, frozen=False))

    def _engine(self, *args: str, timeout: float) -> int:
        try:
            done = subprocess.run(
                self.engine.argv(*args),
                env=self.engine.environ(),
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return -1
        return done.returncode
