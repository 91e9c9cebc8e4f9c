"""Load-balancing endpoints: requests go straight to HTTP servers inside the workers.

The balancer picks a ready worker by least outstanding requests, holds a request while the
endpoint scales from zero (up to a limit), and health-checks every worker's `GET /ping`:
200 ready, 204 still initializing, anything else (or no answer) unhealthy after a few checks
in a row. Its counters (requests in flight, requests held waiting for a worker) are what the
scheduler's scaling policy sees for such endpoints, in place of a job queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from runq.core.worker import Worker, WorkerState
from runq.errors import RunqError
from runq.fleet.registry import WorkerRegistry
from runq.fleet.upstream import Pool

log = logging.getLogger("runq.fleet")

HEALTH_EVERY_S = 0.5
HEALTH_TIMEOUT_S = 2.0
FAILS_BEFORE_UNHEALTHY = 3
HOLD_LIMIT_S = 60.0  # scale from zero: longest a request waits for a first ready worker

Clock = Callable[[], float]


class NoWorker(RunqError):
    """No worker became ready within the hold limit (answered 503)."""


@dataclass
class _Endpoint:
    held: dict[int, float] = field(default_factory=dict)  # waiting request -> since when
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0


@dataclass(frozen=True)
class LoadStats:
    held: int
    in_flight: int
    oldest_held_at: float | None


def no_capacity(workers: list[Worker]) -> str | None:
    """Why no worker of an endpoint will become ready soon, when every one it has waits for
    capacity (throttled) and none is starting; None otherwise (or before it has any).

    >>> wait = Worker("w1", "ep", "t", state=WorkerState.THROTTLED)
    >>> no_capacity([wait])
    'no capacity: 1 worker(s) throttled, waiting for a free GPU or CPU slot (throttled)'
    >>> no_capacity([wait, Worker("w2", "ep", "t", state=WorkerState.INITIALIZING)]) is None
    True
    """
    serving = (WorkerState.INITIALIZING, WorkerState.IDLE, WorkerState.RUNNING)
    if any(w.state in serving and not w.draining for w in workers):
        return None
    throttled = [w for w in workers if w.state == WorkerState.THROTTLED]
    if not throttled:
        return None
    why = throttled[0].transitions[-1].reason if throttled[0].transitions else "throttled"
    return (
        f"no capacity: {len(throttled)} worker(s) throttled, waiting for a free GPU or CPU "
        f"slot ({why})"
    )


class LoadBalancer:
    def __init__(self, registry: WorkerRegistry, clock: Clock = time.time) -> None:
        self._registry = registry
        self._clock = clock
        self._endpoints: dict[str, _Endpoint] = {}
        self._outstanding: dict[str, int] = {}  # worker id -> requests in flight
        self._fails: dict[str, int] = {}
        self._next_ticket = 0
        self._health = httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S)
        self._pools: dict[str, Pool] = {}

    def pool(self, worker: Worker) -> Pool:
        """Keep-alive connections to `worker`'s HTTP server."""
        pool = self._pools.get(worker.id)
        if pool is None:
            assert worker.port is not None
            pool = self._pools[worker.id] = Pool(worker.port)
        return pool

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        await self._health.aclose()

    def _state(self, endpoint: str) -> _Endpoint:
        return self._endpoints.setdefault(endpoint, _Endpoint())

    def stats(self, endpoint: str) -> LoadStats:
        state = self._state(endpoint)
        oldest = min(state.held.values()) if state.held else None
        return LoadStats(len(state.held), state.in_flight, oldest)

    # --- choosing a worker --------------------------------------------------------------
    def _ready(self, endpoint: str) -> list[Worker]:
        return [
            w
            for w in self._registry.all(endpoint)
            if w.state in (WorkerState.IDLE, WorkerState.RUNNING) and w.port and not w.draining
        ]

    async def acquire(
        self, endpoint: str, hold_limit_s: float, wanted: Callable[[], None]
    ) -> Worker:
        """The ready worker with the fewest requests in flight; waits for one (scale from zero)
        up to `hold_limit_s`, calling `wanted()` so the scheduler starts or revives one."""
        state = self._state(endpoint)
        ready = self._ready(endpoint)
        if not ready:
            ticket = self._next_ticket
            self._next_ticket += 1
            state.held[ticket] = self._clock()
            try:
                wanted()
                loop = asyncio.get_running_loop()
                deadline = loop.time() + hold_limit_s
                while not ready:
                    state.ready.clear()
                    remaining = deadline - loop.time()
                    full = no_capacity(self._registry.all(endpoint))
                    if full is not None:  # nothing is starting: waiting would not help
                        raise NoWorker(f"no worker of endpoint '{endpoint}' can start: {full}")
                    if remaining <= 0:
                        raise NoWorker(
                            f"no worker of endpoint '{endpoint}' became ready within "
                            f"{hold_limit_s:g}s (workers are starting; retry later)"
                        )
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(remaining, HEALTH_EVERY_S)):
                            await state.ready.wait()
                    ready = self._ready(endpoint)
            finally:
                del state.held[ticket]
        worker = min(ready, key=lambda w: self._outstanding.get(w.id, 0))
        self._outstanding[worker.id] = self._outstanding.get(worker.id, 0) + 1
        state.in_flight += 1
        if worker.state == WorkerState.IDLE:
            self._registry.move(worker, WorkerState.RUNNING, "serving a request")
        return worker

    def outstanding(self, worker_id: str) -> int:
        """Requests in flight on the worker."""
        return self._outstanding.get(worker_id, 0)

    def release(self, worker: Worker) -> None:
        left = self._outstanding.get(worker.id, 1) - 1
        self._outstanding[worker.id] = left
        self._state(worker.endpoint).in_flight -= 1
        if left <= 0:
            self._outstanding.pop(worker.id, None)
            if worker.state == WorkerState.RUNNING:
                self._registry.move(worker, WorkerState.IDLE, "no request in flight")

    # --- health -------------------------------------------------------------------------
    async def check_all(self, endpoints: set[str]) -> None:
        """One round of health checks of every load-balancing worker that runs."""
        for gone in set(self._pools) - {w.id for w in self._registry.all()}:
            self._pools.pop(gone).close()
        workers = [
            w
            for w in self._registry.all()
            if w.endpoint in endpoints
            and w.health_port
            and w.state in (WorkerState.INITIALIZING, WorkerState.IDLE, WorkerState.RUNNING)
        ]
        await asyncio.gather(*(self._check(w) for w in workers))

    async def _check(self, worker: Worker) -> None:
        try:
            reply = await self._health.get(f"http://127.0.0.1:{worker.health_port}/ping")
            status = reply.status_code
        except httpx.HTTPError as exc:
            status, detail = 0, f"{type(exc).__name__}"
        else:
            detail = f"HTTP {status}"
        if status in (200, 204):
            self._fails.pop(worker.id, None)
            worker.last_seen = self._clock()
            if status == 200 and worker.state == WorkerState.INITIALIZING:
                self._registry.move(worker, WorkerState.IDLE, "ready: /ping answered 200")
                self._state(worker.endpoint).ready.set()
            return
        if worker.state == WorkerState.INITIALIZING and status == 0:
            return  # its server is not listening yet: still starting (init_timeout's job)
        fails = self._fails.get(worker.id, 0) + 1
        self._fails[worker.id] = fails
        if fails >= FAILS_BEFORE_UNHEALTHY:
            self._fails.pop(worker.id, None)
            reason = f"/ping failed {fails} times in a row ({detail})"
            log.warning("worker %s unhealthy: %s", worker.id, reason)
            worker.unhealthy_reason = reason
            self._registry.move(worker, WorkerState.UNHEALTHY, reason)

    async def run_health_checks(self, endpoints: Callable[[], set[str]]) -> None:
        while True:
            try:
                names = endpoints()
                if names:
                    await self.check_all(names)
            except Exception:  # one bad round must not stop the checks
                log.exception("health check round failed")
            await asyncio.sleep(HEALTH_EVERY_S)
