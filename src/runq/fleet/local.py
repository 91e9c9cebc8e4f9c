"""Local provisioner: worker processes on this machine, restarted when they die, never orphaned."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from runq.bundles import BundleError, build, bundle_for
from runq.core.config import ServerConfig
from runq.core.secret_refs import SecretMissing, resolve
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.fleet import workdir
from runq.fleet.container_host import reap_containers
from runq.fleet.containers import ContainerError, ContainerWorkers, Launch
from runq.fleet.forkserver import ForkedProcess, ForkServers
from runq.fleet.proctree import control_plane_pids, kill_worker_tree, signal_all, worker_pids
from runq.fleet.provisioner import ExitHandler
from runq.fleet.registry import WorkerRegistry
from runq.fleet.secrets import SECRETS_FILE, Secrets
from runq.fleet.worker_env import full_worker_env
from runq.fleet.worker_logs import CappedLog, LogFifo, pump
from runq.models import ModelCache, ModelError, Pinned
from runq.models.env import acquire_for, model_env

log = logging.getLogger("runq.fleet")


_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 5.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGKILL the worker when the control plane dies, even by kill -9; and
    give it the usual umask, not runq's own 077: what a worker writes is its business."""
    os.umask(0o022)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Process:
    def __init__(self, spec: EndpointSpec, worker: Worker) -> None:
        self.spec = spec
        self.worker = worker
        self.process: asyncio.subprocess.Process | ForkedProcess | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.stop_reason = "stopped"
        self.fetching = False  # pulling its model: no process yet


class LocalProvisioner:
    """Worker processes on this machine, started and stopped one by one by the scheduler.

    Each runs in its own process group and dies with the control plane even on kill -9
    (PR_SET_PDEATHSIG); a stop also ends the children that left the group (`proctree`). Its
    environment is built, not inherited (`worker_env`), its working directory is its own
    (`workdir`), and what it prints goes through a pipe into a capped log (`worker_logs`).
    Parking freezes the group with SIGSTOP: memory and GPU memory stay, no CPU is used, and
    SIGCONT resumes it in well under a millisecond.
    """

    def __init__(
        self, config: ServerConfig, registry: WorkerRegistry, on_exit: ExitHandler
    ) -> None:
        self._config = config
        self._registry = registry
        self._on_exit = on_exit
        self._procs: dict[str, _Process] = {}
        self._log_dir = config.data_dir / "logs"
        self._forks = ForkServers(self._log_dir, self._command, _die_with_parent)  # preload
        self._bundle_locks: dict[Path, asyncio.Lock] = {}
        self.models = ModelCache(config.model_cache_dir, config.model_cache_max_bytes)
        self._overlay = True  # until an overlay mount fails here once
        self.secrets = Secrets(config.data_dir / SECRETS_FILE)
        self.containers = ContainerWorkers(config)  # workers with [worker] image

    def start(self, spec: EndpointSpec, worker: Worker) -> None:
        """Starts the process of a registered worker (INITIALIZING); returns at once."""
        if spec.type == "load_balancer":
            # Workers share this machine: each gets free ports of its own (PORT, PORT_HEALTH)
            # where a container would use the endpoint's declared ones.
            worker.port = free_port()
            same = spec.worker.health_port in (None, spec.worker.port)
            worker.health_port = worker.port if same else free_port()
        proc = _Process(spec, worker)
        self._procs[worker.id] = proc
        proc.task = asyncio.create_task(self._run(proc), name=f"worker-{worker.id}")

    async def stop(self, worker_id: str, reason: str = "stopped") -> None:
        """SIGTERM the worker's group, SIGKILL after the grace; returns once it is gone."""
        proc = self._procs.get(worker_id)
        if proc is None:
            return
        proc.stopping = True
        proc.stop_reason = reason
        process = proc.process
        if proc.fetching and proc.task is not None:
            proc.task.cancel()  # the download thread finishes alone; no worker will start
        elif process is None and proc.task is not None:
            proc.task.cancel()  # waiting for its bundle or preload template: none will start
        if process is not None and process.returncode is None:
            if proc.spec.worker.image:  # by name: signals to the CLI do not reach a container
                await self.containers.stop(worker_id, _STOP_GRACE_S)
            else:
                _signal_group(process, signal.SIGTERM)
                _signal_group(process, signal.SIGCONT)  # a parked (stopped) process must wake
                # Its children that left the group (setsid) are told too; the kill after its
                # exit ends whatever of them is left.
                escaped = await asyncio.to_thread(worker_pids, self._config.data_dir, worker_id)
                signal_all(escaped, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), _STOP_GRACE_S)
            except TimeoutError:
                _signal_group(process, signal.SIGKILL)
        if proc.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await proc.task

    async def stop_endpoint(self, name: str, reason: str = "endpoint stopped") -> None:
        ids = [wid for wid, proc in self._procs.items() if proc.spec.name == name]
        await asyncio.gather(*(self.stop(wid, reason) for wid in ids))
        await self._forks.stop(name)

    async def shutdown(self) -> None:
        await asyncio.gather(*(self.stop(wid, "runq stopped") for wid in list(self._procs)))
        await self._forks.shutdown()
        kill_leftovers(self._config.data_dir)

    def prepull(self, spec: EndpointSpec) -> None:
        """A deploy's image, got before its workers start (Fleet.prepull)."""
        self.containers.prepull(spec)

    def prepulling(self, endpoint: str) -> bool:
        return self.containers.prepulling(endpoint)

    def release_image(self, endpoint: str) -> None:
        """The endpoint is undeployed: its image may be evicted (runq.fleet.images)."""
        self.containers.release(endpoint)

    def images_held(self) -> tuple[str, ...]:
        """The container images this machine holds, as placement names them."""
        return self.containers.held_keys()

    def park(self, worker_id: str) -> bool:
        """Freezes the worker's processes (FlashBoot)."""
        if self._image_worker(worker_id):
            return self.containers.park(worker_id)
        return self._signal(worker_id, signal.SIGSTOP)

    def revive(self, worker_id: str) -> bool:
        """Resumes a parked worker."""
        if self._image_worker(worker_id):
            return self.containers.revive(worker_id)
        return self._signal(worker_id, signal.SIGCONT)

    def kill(self, worker_id: str, reason: str | None = None) -> bool:
        """SIGKILL a worker's process group (the scheduler replaces it if still wanted).
        With a `reason` the exit counts as intended (no crash-loop back-off)."""
        proc = self._procs.get(worker_id)
        if proc is not None and reason is not None:
            proc.stopping = True
            proc.stop_reason = reason
        if self._image_worker(worker_id):
            self.containers.kill(worker_id)  # by name: killing the CLI alone leaves it running
        return self._signal(worker_id, signal.SIGKILL)

    def pid(self, worker_id: str) -> int | None:
        proc = self._procs.get(worker_id)
        return proc.process.pid if proc and proc.process else None

    def connect(self) -> None:
        """This machine: nothing to join."""

    async def load_index(self) -> None:
        """The model cache is on this machine's disk: nothing to read from the store."""

    def hosts(self) -> None:
        """One machine: the scheduler uses the config's hosts or what it detects here."""
        return None

    def _image_worker(self, worker_id: str) -> bool:
        proc = self._procs.get(worker_id)
        alive = proc is not None and proc.process is not None and proc.process.returncode is None
        return alive and proc is not None and bool(proc.spec.worker.image)

    def _signal(self, worker_id: str, sig: signal.Signals) -> bool:
        proc = self._procs.get(worker_id)
        if proc is None or proc.process is None or proc.process.returncode is not None:
            return False
        _signal_group(proc.process, sig)
        return True

    async def _run(self, proc: _Process) -> None:
        spec, worker = proc.spec, proc.worker
        gpus = worker.placement.gpu_indices if worker.placement else ()
        gpu_type = worker.placement.gpu_type if worker.placement else "cpu"
        log_path = self._log_dir / spec.name / f"{worker.id}.log"
        sink = CappedLog(log_path, self._config.log_max_bytes, self._config.log_backups)
        code = -1
        failure = ""
        held: Pinned | None = None
        place: workdir.WorkDir | None = None
        copying: asyncio.Task[None] | LogFifo | None = None
        try:
            endpoint_env = resolve(spec.worker.env, self.secrets.get)
            env = full_worker_env(os.environ, self._config, spec, worker, gpu_type, endpoint_env)
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in gpus)
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the indices are NVML's, in PCI order
            if worker.port is not None:
                env["PORT"] = str(worker.port)
                env["PORT_HEALTH"] = str(worker.health_port or worker.port)
            held = await self._fetch_model(proc)
            if held is not None:
                env.update(model_env(held))
            launch: Launch | None = None
            command: tuple[str, ...] = ()
            if spec.worker.image:  # a container runs the worker (fleet/containers.py)
                launch = await self.containers.prepare(spec, worker, held, endpoint_env)
            else:
                command = await self._command(spec)
            worker.spawned_at = time.time()
            preload = spec.model is not None and spec.model.preload and not spec.worker.image
            if preload and self._forks.usable(spec.name):
                # A forked worker opens its log itself: a named pipe runq copies from.
                place = workdir.prepare(self._config.data_dir, worker.id, spec.worker.dir, False)
                env["TMPDIR"] = str(place.tmp)
                fifo = LogFifo(place.scratch / "log.pipe", sink)
                copying = fifo
                forked = await self._forks.spawn(spec, env, fifo.path, place.cwd)
                if forked is not None:
                    worker.forked, worker.spawned_at = True, forked.forked_at
                proc.process = forked
            if proc.process is None:
                if isinstance(copying, LogFifo):
                    copying.close()
                if launch is not None:  # the engine's CLI, attached: the container's output
                    proc.process = await asyncio.create_subprocess_exec(
                        *launch.argv,
                        cwd=launch.cwd,
                        env=launch.env,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
                else:
                    proc.process, place = await self._spawn(spec, worker, command, env, place)
                assert proc.process.stdout is not None
                copying = asyncio.create_task(pump(proc.process.stdout, sink))
            code = await proc.process.wait()
            # The worker's own children (the runpod SDK's ping process) outlive it otherwise,
            # in its group or out of it.
            _signal_group(proc.process, signal.SIGKILL)
            await asyncio.to_thread(kill_worker_tree, self._config.data_dir, worker.id)
        except ModelError as exc:
            failure = f"model fetch failed: {exc}"
            log.error("worker %s of %s: %s", worker.id, spec.name, failure)
        except BundleError as exc:
            failure = f"bundle build failed: {exc}"
            log.error("worker %s of %s: %s", worker.id, spec.name, failure)
        except SecretMissing as exc:
            failure = str(exc)
            log.error("worker %s of %s: %s", worker.id, spec.name, failure)
        except ContainerError as exc:
            failure = f"container failed: {exc}"
            log.error("worker %s of %s: %s", worker.id, spec.name, failure)
        except OSError as exc:
            log.error("cannot start worker of %s: %s", spec.name, exc)
        finally:
            if held is not None:
                held.release()
            if spec.worker.image:
                await self.containers.finished(worker.id, spec.name, code)
            if isinstance(copying, LogFifo):
                copying.close()
            elif copying is not None:
                await copying  # the pipe has closed: every process of the worker is gone
            if place is not None:
                place.remove()
            self._procs.pop(worker.id, None)
            reason = proc.stop_reason if proc.stopping else failure or f"exited with code {code}"
        if not proc.stopping:
            log.warning("worker %s of %s exited with code %s", worker.id, spec.name, code)
        await self._on_exit(worker, code, proc.stopping, reason)

    async def _spawn(
        self,
        spec: EndpointSpec,
        worker: Worker,
        command: tuple[str, ...],
        env: dict[str, str],
        place: workdir.WorkDir | None,
    ) -> tuple[asyncio.subprocess.Process, workdir.WorkDir]:
        """Starts the worker's process in a working directory of its own (an overlay when
        runq may mount one, else links), its output into a pipe."""
        folder = spec.worker.dir
        overlay = self._overlay and workdir.can_overlay(folder)
        if place is not None:
            place.remove()
        place = workdir.prepare(self._config.data_dir, worker.id, folder, overlay)
        env["TMPDIR"] = str(place.tmp)

        def in_child() -> None:  # pragma: no cover - runs between fork and exec
            _die_with_parent()
            if place.overlay:
                place.mount_in_child()

        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=folder,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: we stop its children
                preexec_fn=in_child,
            )
        except subprocess.SubprocessError as exc:  # the overlay could not be mounted
            if not place.overlay:
                raise OSError(str(exc)) from exc
            log.warning(
                "cannot mount an overlay for worker %s (%s): workers get linked folders",
                worker.id,
                exc,
            )
            self._overlay = False
            return await self._spawn(spec, worker, command, env, place)
        return process, place

    async def _fetch_model(self, proc: _Process) -> Pinned | None:
        """Initialization's first phase: the endpoint's model on this host, pulled once and
        shared, pinned while the worker lives. In a thread: a download must not block the loop."""
        placement = proc.worker.placement
        host = next((h for h in self._config.hosts if placement and h.name == placement.host), None)
        proc.fetching = True
        try:
            return await asyncio.to_thread(
                acquire_for, self.models, proc.spec, host.volumes if host else {}
            )
        finally:
            proc.fetching = False

    async def _command(self, spec: EndpointSpec) -> tuple[str, ...]:
        """The worker command. With `[worker] requirements`, a bare `python` is the bundle's
        venv; a bundle nobody built yet (`runq bundle build`) is built by its first start,
        which then counts in that worker's initialization."""
        command = resolve_command(spec.worker.command)
        if not spec.worker.command or spec.worker.command[0] not in ("python", "python3"):
            return command
        bundle = bundle_for(spec, self._config.data_dir)
        if bundle is None:
            return command
        if not bundle.built:
            async with self._bundle_locks.setdefault(bundle.venv, asyncio.Lock()):
                if not bundle.built:
                    log.warning("bundle of %s is not built: building it now", spec.name)
                    await asyncio.to_thread(build, bundle)
        return (str(bundle.python), *command[1:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def resolve_command(command: tuple[str, ...]) -> tuple[str, ...]:
    """A bare `python` means the interpreter runq runs on, so a worker sees the packages of
    runq's environment (a venv need not be on PATH)."""
    if command and command[0] in ("python", "python3"):
        return (sys.executable, *command[1:])
    return command


def _signal_group(process: asyncio.subprocess.Process | ForkedProcess, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def kill_leftovers(data_dir: Path) -> int:
    """SIGKILL processes a previous control plane on `data_dir` started and left behind,
    remove their working directories, and reap the containers it left (by label)."""
    killed = signal_all(control_plane_pids(data_dir), signal.SIGKILL)
    workdir.clear_leftovers(data_dir)
    return killed + reap_containers(data_dir)
