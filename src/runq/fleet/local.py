"""Local provisioner: worker processes on this machine, restarted when they die, never orphaned."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from runq.core.config import ServerConfig
from runq.core.spec import EndpointSpec
from runq.core.worker import Worker
from runq.fleet.registry import WorkerRegistry
from runq.fleet.worker_env import CONTROL_PLANE_MARKER, worker_env

log = logging.getLogger("runq.fleet")

ExitHandler = Callable[[Worker, int], Awaitable[None]]

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_S = 5.0
_MAX_BACKOFF_S = 30.0
_HEALTHY_RUN_S = 30.0  # a worker that lived this long was not crash looping


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to SIGKILL the worker when the control plane dies, even by kill -9."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _Slot:
    def __init__(self, spec: EndpointSpec) -> None:
        self.spec = spec
        self.worker: Worker | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False


class LocalProvisioner:
    """Keeps `count` worker processes running per endpoint."""

    def __init__(
        self, config: ServerConfig, registry: WorkerRegistry, on_exit: ExitHandler
    ) -> None:
        self._config = config
        self._registry = registry
        self._on_exit = on_exit
        self._slots: dict[str, list[_Slot]] = {}
        self._log_dir = config.data_dir / "logs"

    def start_endpoint(self, spec: EndpointSpec, count: int) -> None:
        self._slots.setdefault(spec.name, [])
        slots = self._slots[spec.name]
        for _ in range(count - len(slots)):
            slot = _Slot(spec)
            slot.task = asyncio.create_task(self._keep_running(slot), name=f"worker-{spec.name}")
            slots.append(slot)

    async def stop_endpoint(self, name: str) -> None:
        await asyncio.gather(*(self._stop_slot(slot) for slot in self._slots.pop(name, [])))

    async def shutdown(self) -> None:
        await asyncio.gather(*(self.stop_endpoint(name) for name in list(self._slots)))
        kill_leftovers(self._config.data_dir)

    def kill(self, worker_id: str) -> bool:
        """SIGKILL a worker's process group; its slot starts a fresh one."""
        for slot in self._all_slots():
            if slot.worker and slot.worker.id == worker_id and slot.process:
                _signal_group(slot.process, signal.SIGKILL)
                return True
        return False

    def pid(self, worker_id: str) -> int | None:
        for slot in self._all_slots():
            if slot.worker and slot.worker.id == worker_id and slot.process:
                return slot.process.pid
        return None

    def _all_slots(self) -> list[_Slot]:
        return [slot for slots in self._slots.values() for slot in slots]

    async def _stop_slot(self, slot: _Slot) -> None:
        slot.stopping = True
        if slot.process is not None and slot.process.returncode is None:
            _signal_group(slot.process, signal.SIGTERM)
            try:
                await asyncio.wait_for(slot.process.wait(), _STOP_GRACE_S)
            except TimeoutError:
                _signal_group(slot.process, signal.SIGKILL)
        if slot.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await slot.task

    async def _keep_running(self, slot: _Slot) -> None:
        backoff = 0.5
        loop = asyncio.get_running_loop()
        while not slot.stopping:
            started = loop.time()
            code = await self._run_once(slot)
            if slot.stopping:
                return
            ran = loop.time() - started
            backoff = 0.5 if ran > _HEALTHY_RUN_S else min(backoff * 2, _MAX_BACKOFF_S)
            if ran <= _HEALTHY_RUN_S:
                log.warning("worker of %s exited with %s after %.1fs", slot.spec.name, code, ran)
                await asyncio.sleep(backoff)

    async def _run_once(self, slot: _Slot) -> int:
        spec = slot.spec
        worker = self._registry.register(spec.name)
        slot.worker = worker
        env = {**os.environ, **spec.worker.env, **worker_env(self._config, spec, worker)}
        log_path = self._log_dir / spec.name / f"{worker.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            try:
                process = await asyncio.create_subprocess_exec(
                    *resolve_command(spec.worker.command),
                    cwd=spec.worker.dir,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group: we stop its children too
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                log.error("cannot start worker of %s: %s", spec.name, exc)
                self._registry.remove(worker.id)
                await self._on_exit(worker, -1)
                return -1
        slot.process = process
        code = await process.wait()
        # The worker's own children (the runpod SDK's ping process) outlive it otherwise.
        _signal_group(process, signal.SIGKILL)
        self._registry.remove(worker.id)
        await self._on_exit(worker, code)
        return code


def resolve_command(command: tuple[str, ...]) -> tuple[str, ...]:
    """A bare `python` means the interpreter runq runs on, so a worker sees the packages of
    runq's environment (a venv need not be on PATH)."""
    if command and command[0] in ("python", "python3"):
        return (sys.executable, *command[1:])
    return command


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def kill_leftovers(data_dir: Path) -> int:
    """SIGKILL processes a previous control plane on `data_dir` started and left behind."""
    marker = f"{CONTROL_PLANE_MARKER}={data_dir}".encode()
    killed = 0
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):  # the whole variable, not a prefix of it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed
