"""Run the control plane: store, fleet and API in one asyncio process under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
from pathlib import Path
from types import FrameType

import uvicorn

from runq.api.auth import ApiKeys, load_or_create_secret
from runq.api.header_timeout import protocol_class
from runq.core.config import ServerConfig
from runq.core.spec import EndpointSpec
from runq.server.app import create_app
from runq.server.services import Services
from runq.store.factory import make_store

KEEP_ALIVE_S = 75
# Under the data dir, trees whose every file and folder is the owner's only (the model cache and
# bundles are left as they are: what workers read, not what clients sent).
_PRIVATE_TREES = ("logs", "workers")
FD_LIMIT_WANTED = 65536  # connections, log files and the store, with room to spare


# A young collection every GC_YOUNG allocations instead of Python's 700: with a thousand workers
# the server allocates quickly (pings, polls), and each collection's cost grows with the heap.
GC_YOUNG = 10_000


def tune_gc() -> None:
    """Keep Python's garbage collector out of the way of requests: what exists once the app is
    built (modules, routes, schemas: most of the heap, and never garbage) is frozen, so full
    collections no longer walk it, and young collections run less often. Measured with 1,000
    workers (benchmarks/scale.py): full collections of 95-150 ms were the p99 of `/metrics`
    and of the scheduler's tick."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)


def raise_fd_limit(wanted: int = FD_LIMIT_WANTED) -> int:
    """Raise this process's soft limit on open files towards `wanted` (never past the hard
    limit, never lowered) and return it. A common soft default of 1024 would let a thousand
    idle connections (until the header timeout closes them) make every new one fail."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class _Server(uvicorn.Server):
    """Graceful shutdown on SIGTERM or Ctrl-C: first the control plane drains (no new jobs
    handed out; running ones finish, their results still accepted, up to shutdown_grace; the
    rest requeued), then uvicorn closes (held long-polls released so it need not wait their
    hold), then the workers stop. A second signal skips the wait."""

    plane: Services | None = None
    _draining: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        plane = self.plane
        if plane is None or self._draining is not None:
            self._exit_now(sig, frame)
            return
        loop = asyncio.get_event_loop()
        grace = plane.config.shutdown_grace_s

        async def drain_then_exit() -> None:
            try:
                await plane.drain(grace)
            finally:
                self._exit_now(sig, frame)

        def begin() -> None:
            self._draining = loop.create_task(drain_then_exit(), name="runq-drain")

        loop.call_soon_threadsafe(begin)

    def _exit_now(self, sig: int, frame: FrameType | None) -> None:
        if self.plane is not None:
            # Maybe in a signal handler: touch the loop's objects from the loop only.
            asyncio.get_event_loop().call_soon_threadsafe(self.plane.close_now)
        super().handle_exit(sig, frame)
        # Uvicorn re-raises the signal after its shutdown, so the process would die by it; a
        # graceful stop on SIGTERM is a success, and exits 0.
        self._captured_signals.clear()


def secure_data_dir(data_dir: Path) -> None:
    """The data dir holds every input and output, the keys and the logs: its owner's only
    (0700, files 0600), also when an older runq made it with looser modes."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    for path in [data_dir, *(data_dir / name for name in _PRIVATE_TREES)]:
        if not path.is_dir():
            continue
        for entry in [path, *path.rglob("*")] if path != data_dir else path.iterdir():
            with contextlib.suppress(OSError):
                if entry.is_symlink():
                    continue
                entry.chmod(0o700 if entry.is_dir() else entry.stat().st_mode & 0o700 or 0o600)


def build(config: ServerConfig) -> tuple[Services, ApiKeys, str]:
    secure_data_dir(config.data_dir)
    store = make_store(config)
    api_key = load_or_create_secret(config.data_dir, "api_key", "RUNQ_API_KEY")
    secret = config.webhook_secret or load_or_create_secret(config.data_dir, "webhook_secret")
    keys = ApiKeys(api_key, store, config.rate_limit)
    return Services(config, store, secret), keys, api_key


def serve(config: ServerConfig, specs: list[EndpointSpec], log_level: str = "info") -> None:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    # httpx logs every request at INFO: the health checks of load-balancing workers would
    # fill the log twice a second per worker.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    os.umask(0o077)  # what runq writes (database, logs, secrets) is its owner's only
    raise_fd_limit()
    plane, keys, _ = build(config)
    app = create_app(plane, keys, specs)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning" if log_level != "debug" else "info",
        access_log=False,
        timeout_graceful_shutdown=5,
        # Longer than any client's idle keep-alive (aiohttp's, in the runpod SDK, is 15 s):
        # with uvicorn's 5 s default, a worker that stays quiet for 5-15 s (a model load)
        # posts its result on a connection the server has just closed ("Server
        # disconnected"), and the SDK does not retry it.
        timeout_keep_alive=KEEP_ALIVE_S,
        # Uvicorn has no deadline on a request head: idle or half-sent connections would
        # stay open for ever.
        http=protocol_class(config.header_timeout_s),
    )
    server = _Server(uv_config)
    server.plane = plane
    tune_gc()
    server.run()
