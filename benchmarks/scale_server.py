"""`runq serve` for benchmarks/scale.py, with one difference: workers are loops, not processes.

The control plane is the real one (`runq.server.serve.build` and `create_app`, its store, its
scheduler, uvicorn), and it manages its workers as usual: the scheduler registers each worker
and asks a provisioner to start it. This provisioner, instead of starting one process per
worker, tells one worker-host process (`scale_workers.py`) to start a protocol-exact worker loop
with that worker's id, token and URLs, exactly the variables a worker process would get. The
loops speak real HTTP to the real worker API (job-take long-poll, job-done, ping), so the
control plane cannot tell them from the runpod SDK: 1,000 workers cost one process, not 1,000.

Two more things for the benchmark: every scheduler tick is timed (GET /bench/ticks returns the
durations since the last call, in ms: `wall`, and `decide`, its part after the store
answered; GET /bench/gc the pauses of Python's full garbage collections), and endpoints named
`$SCALE_IDLE_PREFIX*` get no loop (their worker stays INITIALIZING: a queue nobody takes
from).

    python benchmarks/scale_server.py DATA_DIR PORT STORE SPEC_DIR
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import IO, Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse

from runq.core.config import ServerConfig, load_config
from runq.core.spec import EndpointSpec, load_spec
from runq.core.worker import Worker
from runq.fleet.provisioner import ExitHandler
from runq.fleet.registry import WorkerRegistry
from runq.models import ModelCache
from runq.server.app import create_app
from runq.server.serve import KEEP_ALIVE_S, build, tune_gc
from runq.store.base import QueueStats

WORKERS_SCRIPT = Path(__file__).with_name("scale_workers.py")
# Endpoints whose names start with this get no worker loop: a queue that nobody takes from.
IDLE_PREFIX = os.environ.get("SCALE_IDLE_PREFIX", "backlog")


class LoopProvisioner:
    """Starts and stops worker loops in the worker-host process, one JSON line each."""

    def __init__(
        self,
        config: ServerConfig,
        registry: WorkerRegistry,
        on_exit: ExitHandler,
        models: ModelCache,
    ) -> None:
        self._config = config
        self._registry = registry
        self._on_exit = on_exit
        self.models = models
        self._workers: dict[str, Worker] = {}
        self._host: subprocess.Popen[bytes] | None = None
        self._exits: set[asyncio.Future[None]] = set()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def _send(self, message: dict[str, object]) -> None:
        """Queued for a writer thread: a pipe write blocks while the host is busy, and must
        not block the control plane's loop (a cost the real provisioner does not have)."""
        if self._host is None:
            self._host = subprocess.Popen(
                [sys.executable, str(WORKERS_SCRIPT)], stdin=subprocess.PIPE
            )
            threading.Thread(target=self._write, args=(self._host.stdin,), daemon=True).start()
        self._outbox.put(json.dumps(message).encode() + b"\n")

    def _write(self, stdin: IO[bytes]) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):  # the host is gone
            while (line := self._outbox.get()) is not None:
                stdin.write(line)
                if self._outbox.empty():
                    stdin.flush()
            stdin.close()

    def start(self, spec: EndpointSpec, worker: Worker) -> None:
        self._workers[worker.id] = worker
        worker.spawned_at = time.time()
        if spec.name.startswith(IDLE_PREFIX):
            return
        base = f"{self._config.worker_base_url}/v2/{spec.name}"
        self._send(
            {
                "start": worker.id,
                "token": worker.token,
                "take": f"{base}/job-take/{worker.id}?gpu=cpu",
                "done": f"{base}/job-done/{worker.id}/$ID?gpu=cpu",
                "ping": f"{base}/ping/{worker.id}?gpu=cpu",
                "ping_s": max(1.0, float(int(self._config.ping_interval_s))),
            }
        )

    def _end(self, worker_id: str, reason: str, expected: bool) -> bool:
        worker = self._workers.pop(worker_id, None)
        if worker is None:
            return False
        self._send({"stop": worker_id})
        task = asyncio.ensure_future(self._on_exit(worker, 0, expected, reason))
        self._exits.add(task)
        task.add_done_callback(self._exits.discard)
        return True

    async def stop(self, worker_id: str, reason: str = "stopped") -> None:
        self._end(worker_id, reason, expected=True)

    async def stop_endpoint(self, name: str, reason: str = "endpoint stopped") -> None:
        for worker_id, worker in list(self._workers.items()):
            if worker.endpoint == name:
                self._end(worker_id, reason, expected=True)

    async def shutdown(self) -> None:
        for worker_id in list(self._workers):
            self._end(worker_id, "runq stopped", expected=True)
        await asyncio.gather(*self._exits, return_exceptions=True)
        if self._host is not None:
            self._outbox.put(None)  # the writer closes the pipe: the host stops its loops
            try:
                self._host.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._host.kill()

    def park(self, worker_id: str) -> bool:
        return False  # no FlashBoot here: the scheduler stops the worker instead

    def revive(self, worker_id: str) -> bool:
        return False

    def kill(self, worker_id: str, reason: str | None = None) -> bool:
        return self._end(worker_id, reason or "killed", expected=reason is not None)

    def connect(self) -> None:
        """One machine: nothing to join."""

    async def load_index(self) -> None:
        """Nothing to read from the store."""

    def hosts(self) -> None:
        return None

    def prepull(self, spec: EndpointSpec) -> None:
        """No images here."""

    def prepulling(self, endpoint: str) -> bool:
        return False

    def images_held(self) -> tuple[str, ...]:
        return ()

    def release_image(self, endpoint: str) -> None:
        """No images here."""

    def pid(self, worker_id: str) -> int | None:
        if worker_id not in self._workers:
            return None
        return self._host.pid if self._host is not None else 0


def main() -> None:
    data_dir, port, store, spec_dir = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    logging.basicConfig(level=logging.WARNING)
    config_file = data_dir / "runq.toml"
    config_file.write_text(
        f'[server]\nport = {port}\nstore = "{store}"\ndata_dir = "{data_dir}"\n\n'
        '[[hosts]]\nname = "local"\ncpu_slots = 100000\n'
    )
    config = load_config(config_file)
    specs = [load_spec(path) for path in sorted(Path(spec_dir).glob("*.toml"))]
    plane, keys, _ = build(config)
    local = plane.fleet.provisioner
    plane.fleet.provisioner = LoopProvisioner(config, plane.registry, local._on_exit, local.models)  # type: ignore[attr-defined]

    # Each tick's wall time, and its part after the store's answer (deciding and acting, on
    # the loop): on a shared machine the wall time includes waiting for the CPU and the loop.
    ticks: list[float] = []
    decides: list[float] = []
    scheduler_tick = plane.scheduler.tick
    store_read = plane.store.queue_stats_many
    answered: list[float] = []

    async def timed_read(names: list[str]) -> dict[str, QueueStats]:
        stats = await store_read(names)
        answered.append(time.perf_counter())
        return stats

    async def timed_tick() -> None:
        answered.clear()
        started = time.perf_counter()
        await scheduler_tick()
        ended = time.perf_counter()
        ticks.append((ended - started) * 1000)
        decides.append((ended - (answered[0] if answered else started)) * 1000)

    plane.scheduler.tick = profiled(timed_tick)  # type: ignore[method-assign]
    plane.store.queue_stats_many = timed_read  # type: ignore[method-assign, assignment]

    async def bench_ticks(request: Request) -> JSONResponse:
        taken = {"wall": list(ticks), "decide": list(decides)}
        ticks.clear()
        decides.clear()
        return JSONResponse(taken)

    # Python's collections of its oldest generation, in ms: they stop the loop (ticks too).
    full_gcs: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        elif info["generation"] == 2:
            full_gcs.append((time.perf_counter() - gc_started[0]) * 1000)

    gc.callbacks.append(on_gc)

    async def bench_gc(request: Request) -> JSONResponse:
        taken = list(full_gcs)
        full_gcs.clear()
        return JSONResponse(taken)

    async def bench_waiters(request: Request) -> JSONResponse:
        """Clients waiting on a job now (/runsync, /status-sync, /stream)."""
        return JSONResponse(sum(gate.waiters for gate in plane.signals._jobs.values()))

    app = create_app(plane, keys, specs)
    app.add_route("/bench/ticks", bench_ticks, methods=["GET"])
    app.add_route("/bench/waiters", bench_waiters, methods=["GET"])
    app.add_route("/bench/gc", bench_gc, methods=["GET"])
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=5,  # as runq serve: held long-polls end with the server
            backlog=4096,
        )
    )
    if os.environ.get("RUNQ_SCALE_GC", "tuned") == "tuned":  # "default": Python's own, for A/B
        tune_gc()  # as runq serve does
    server.run()


def profiled(
    ticks: Callable[[], Coroutine[Any, Any, None]],
) -> Callable[[], Coroutine[Any, Any, None]]:
    """With SCALE_PROFILE=PATH, a cProfile of the event loop's thread from the first tick for
    SCALE_PROFILE_S seconds (default 30), written to PATH: where the server's time goes."""
    profile_to = os.environ.get("SCALE_PROFILE")
    if not profile_to:
        return ticks
    import cProfile

    profile = cProfile.Profile()
    until = time.monotonic() + float(os.environ.get("SCALE_PROFILE_S", "30"))
    running = [True]
    profile.enable()

    async def tick() -> None:
        await ticks()
        if running[0] and time.monotonic() > until:
            running[0] = False
            profile.disable()
            profile.dump_stats(profile_to)

    return tick


if __name__ == "__main__":
    main()
