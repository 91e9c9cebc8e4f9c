"""What runs on a Ray node: the actor that starts one worker process there and isolates it as
the local provisioner does (built environment, a folder of its own, a capped log, every process
ended at its exit), and the picklable requests the control plane sends it.

Apart from `runq.fleet.ray` (the control plane's side), so that a node imports only this.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runq.models import ModelCache

if TYPE_CHECKING:
    from runq.fleet.ray_containers import ContainerRequest


@dataclass(frozen=True)
class Isolation:
    """How the actor isolates its worker on its node, as the control plane configures it
    (picklable): which of the node's variables pass, the log cap, where scratch folders go."""

    data_dir: str
    env_pass: tuple[str, ...] = ()
    log_max_bytes: int = 10 * 2**20
    log_backups: int = 2


class WorkerActor:
    """Runs one worker process on its node. Threaded (max_concurrency), so that `signal`
    answers while `wait` blocks. The worker is isolated as on one machine: an environment
    built from the node's basics (never the node's or the control plane's secrets), a working
    directory of its own, a capped log, and every process of it ended at its exit."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.held: Any = None  # the model pinned in this node's cache while the worker runs
        self.place: Any = None  # its working directory (runq.fleet.workdir.WorkDir)
        self.copier: threading.Thread | None = None
        self.isolation: Isolation | None = None
        self.worker_id = ""
        self.shipping: Any = None  # runq.fleet.worker_logs.ShipBuffer: lines for the control plane
        self.container: Any = None  # runq.fleet.ray_containers.NodeContainer: an image worker's

    def start(
        self,
        command: list[str],
        cwd: str,
        env: dict[str, str],
        log_path: str,
        model: ModelRequest | None = None,
        isolation: Isolation | None = None,
    ) -> int:
        import ray

        from runq.fleet import workdir
        from runq.fleet.worker_env import WORKER_MARKER, inherited_env

        isolation = isolation or Isolation(data_dir=str(Path(log_path).parents[2]))
        self.isolation = isolation
        env = {**inherited_env(os.environ, isolation.env_pass), **env}
        self.worker_id = env.get(WORKER_MARKER, "")
        if model is not None:  # initialization's first phase, on the node: its own host cache
            env.update(self._hold_model(model, Path(cwd)))
        gpu_ids = ray.get_gpu_ids()
        if gpu_ids:  # Ray's own GPUs: the ones Ray gave this actor
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)
        folder = Path(cwd)
        overlay = workdir.can_overlay(folder)
        while True:
            place = workdir.prepare(Path(isolation.data_dir), self.worker_id, folder, overlay)
            env["TMPDIR"] = str(place.tmp)

            def in_child(place: workdir.WorkDir = place) -> None:  # pragma: no cover
                _die_with_parent()
                if place.overlay:
                    place.mount_in_child()

            read_end, write_end = os.pipe()
            try:
                self.process = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=write_end,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=in_child,
                )
            except subprocess.SubprocessError:
                os.close(read_end)
                place.remove()
                if not overlay:
                    raise
                overlay = False  # no overlay on this node: linked folders
                continue
            finally:
                os.close(write_end)
            break
        self.place = place
        self._copy_output(read_end, log_path, isolation)
        return self.process.pid

    def start_container(
        self,
        request: ContainerRequest,
        env: dict[str, str],
        log_path: str,
        model: ModelRequest | None = None,
        isolation: Isolation | None = None,
    ) -> int:
        """Run an image worker: the engine's CLI, attached, is this actor's process (its
        output is the container's); `env` goes to the container through a 0600 env file."""
        import time

        import ray

        from runq.fleet.ray_containers import NodeContainer
        from runq.fleet.worker_env import WORKER_MARKER

        isolation = isolation or Isolation(data_dir=request.data_dir)
        self.isolation = isolation
        self.worker_id = env.get(WORKER_MARKER, "")
        model_path: Path | None = None
        if model is not None:
            env = {**env, **self._hold_model(model, Path(isolation.data_dir))}
            model_path = Path(self.held.path)
        container = NodeContainer(request)
        self.container = container
        ray_gpus = [str(i) for i in ray.get_gpu_ids()]
        argv, cli_env = container.prepare(env, model_path, ray_gpus)
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                argv,
                cwd=container.state,
                env=cli_env,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            os.close(write_end)
        container.watch_start(time.time())
        self._copy_output(read_end, log_path, isolation)
        return self.process.pid

    def _hold_model(self, model: ModelRequest, base_dir: Path) -> dict[str, str]:
        """Pull the endpoint's model into this node's cache and pin it while the worker runs;
        the variables that tell the worker where it is."""
        from runq.models.env import model_env

        cache = ModelCache(Path(model.cache_dir), model.cache_max_bytes)
        self.held = cache.acquire(
            model.source, model.revision, model.sha256, volumes=model.volumes, base_dir=base_dir
        )
        return model_env(self.held)

    def _copy_output(self, read_end: int, log_path: str, isolation: Isolation) -> None:
        from runq.fleet.worker_logs import CappedLog, ShipBuffer, pump_blocking

        self.shipping = ShipBuffer()
        sink = CappedLog(
            Path(log_path),
            isolation.log_max_bytes,
            isolation.log_backups,
            on_write=self.shipping.add,
        )
        self.copier = threading.Thread(target=pump_blocking, args=(read_end, sink), daemon=True)
        self.copier.start()

    def wait(self) -> int:
        from runq.fleet.proctree import kill_worker_tree

        assert self.process is not None
        code = self.process.wait()
        if self.held is not None:
            self.held.release()
            self.held = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its own children go with it
        if self.isolation is not None and self.worker_id:  # and those that left its group
            kill_worker_tree(Path(self.isolation.data_dir), self.worker_id)
        if self.copier is not None:
            self.copier.join(timeout=5.0)
        if self.place is not None:
            self.place.remove()
        if self.container is not None:
            self.container.finished()
        return code

    # An image worker's container, by name (signals to the engine's CLI do not reach it).
    def freeze(self, frozen: bool, order: int = 0) -> bool:
        return self.container is not None and bool(self.container.freeze(frozen, order))

    def stop_container(self, grace_s: float) -> None:
        if self.container is not None:
            self.container.stop(grace_s)

    def remove_container(self) -> None:
        if self.container is not None:
            self.container.remove()

    def container_started(self, timeout: float) -> float | None:
        """When the engine started the container (epoch s); None if unknown by `timeout`."""
        return None if self.container is None else self.container.started(timeout)

    def signal(self, signum: int) -> bool:
        if self.process is None or self.process.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)
            return True
        return False

    def take_log(self) -> bytes:
        """The stamped lines written since the last call (the control plane keeps a copy)."""
        return self.shipping.take() if self.shipping is not None else b""

    def environ(self) -> dict[str, str]:
        """The worker process's environment as its node's kernel shows it (tests)."""
        assert self.process is not None
        raw = Path(f"/proc/{self.process.pid}/environ").read_bytes()
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        return {k.decode(): v.decode(errors="replace") for k, v in pairs}

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class ModelRequest:
    """What an actor needs to pull the endpoint's model into its node's cache (picklable)."""

    cache_dir: str
    cache_max_bytes: int
    source: str
    revision: str
    sha256: str
    volumes: Mapping[str, str]
