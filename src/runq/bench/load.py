"""The live load generator behind `runq bench`: send `/run` at a trace's arrival times, wait for
every job to end, and watch the endpoint's workers meanwhile.

Usable as a library (the simulator-fidelity check in benchmarks/policy_compare.py replays a trace
through it):

    result = await run_load(url, key, "echo", traces.constant(5, 60).arrivals, {"x": 1})

Waiting uses `/status-sync/{id}?wait=` (one long poll per job, not a polling storm), on a client
of its own so that waits never hold up a `/run` that is due. Workers and cost come from the admin
API; with a key that may only invoke, the result simply has no worker or cost figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from runq.core.idempotency import HEADER as IDEMPOTENCY_HEADER
from runq.errors import NotFound

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
REFUSED = "REFUSED"  # /run answered an error (or never answered): no job exists
WAIT_MS = 30_000  # one long poll's hold; the server caps it at 300 s
RETRY_S = 0.5  # pause before asking again after a long poll failed in transport
SUBMIT_RETRY_S = 30.0  # a /run lost in transport is sent again, same Idempotency-Key, this long
Transitions = Mapping[str, Sequence[Mapping[str, Any]]]  # worker id -> /admin/workers moves


@dataclass(frozen=True)
class JobRow:
    """One job of a run. Times are seconds from the run's start, on the (sped-up) wall clock."""

    index: int
    id: str | None
    scheduled_s: float  # when the trace said to send it, divided by the speed
    submitted_s: float  # when /run was actually sent
    status: str  # a job status, REFUSED, or the last one seen if it never ended in time
    delay_ms: int | None = None  # the server's delayTime: queued until a worker took it
    execution_ms: int | None = None  # the server's executionTime
    latency_s: float | None = None  # /run sent -> the client saw it end
    error: str | None = None

    @property
    def finished_s(self) -> float | None:
        return None if self.latency_s is None else self.submitted_s + self.latency_s


@dataclass(frozen=True)
class WorkerSample:
    at_s: float
    states: Mapping[str, int]  # live workers by state; terminated ones are left out


@dataclass(frozen=True)
class LoadProgress:
    total: int
    submitted: int
    finished: int


@dataclass(frozen=True)
class LoadResult:
    endpoint: str
    speed: float
    wall_s: float
    jobs: tuple[JobRow, ...]
    samples: tuple[WorkerSample, ...] = ()
    # None where the key could not read /admin (an invoke-only key).
    cold_starts: int | None = None
    revivals: int | None = None
    cost_before_usd: float | None = None
    cost_after_usd: float | None = None

    @property
    def cost_usd(self) -> float | None:
        if self.cost_before_usd is None or self.cost_after_usd is None:
            return None
        return self.cost_after_usd - self.cost_before_usd


def count_starts(baseline: Transitions, seen: Transitions) -> tuple[int, int]:
    """Cold starts and FlashBoot revivals in `seen` that were not already in `baseline`.

    A cold start is a move to `initializing`; a revival is `parked` -> `idle`. Only moves after a
    worker's last baseline move count, so workers warm before the run cost nothing.

    Example: baseline {w1: init@1, idle@3}; seen {w1: init@1, idle@3, parked@9, idle@12;
    w2: init@10, running@14} -> (1, 1): w2's start and w1's revival at 12.
    """
    cold = revived = 0
    for worker, moves in seen.items():
        known = baseline.get(worker, ())
        last = max((float(m["at"]) for m in known), default=float("-inf"))
        previous = ""
        for move in moves:
            if float(move["at"]) > last:
                if move["state"] == "initializing":
                    cold += 1
                elif move["state"] == "idle" and previous == "parked":
                    revived += 1
            previous = str(move["state"])
    return cold, revived


def run_body(payload: Any) -> Any:
    """The /run body: a payload with an `input` key is a whole body, anything else the input."""
    return payload if isinstance(payload, dict) and "input" in payload else {"input": payload}


@dataclass
class _Job:
    index: int
    scheduled_s: float
    submitted_s: float = 0.0
    id: str | None = None
    status: str = REFUSED
    wire: dict[str, Any] = field(default_factory=dict)
    latency_s: float | None = None
    error: str | None = None

    def row(self) -> JobRow:
        delay, execution = self.wire.get("delayTime"), self.wire.get("executionTime")
        error = self.error if self.error is not None else self.wire.get("error")
        return JobRow(
            index=self.index,
            id=self.id,
            scheduled_s=self.scheduled_s,
            submitted_s=self.submitted_s,
            status=self.status,
            delay_ms=int(delay) if isinstance(delay, int | float) else None,
            execution_ms=int(execution) if isinstance(execution, int | float) else None,
            latency_s=self.latency_s,
            error=None if error is None else str(error),
        )


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"
    message = data.get("error", data) if isinstance(data, dict) else data
    return f"{response.status_code}: {message}"


class _Run:
    """One run's state: the clients, the clock origin and what has been seen so far."""

    def __init__(
        self,
        submit: httpx.AsyncClient,
        wait: httpx.AsyncClient,
        endpoint: str,
        body: Any,
        total: int,
        on_progress: Callable[[LoadProgress], None] | None,
        submit_retry_s: float = 0.0,
    ) -> None:
        self.submit, self.wait, self.endpoint, self.body = submit, wait, endpoint, body
        self.submit_retry_s = submit_retry_s
        self.total, self.on_progress = total, on_progress
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.submitted = self.finished = 0
        self.admin = True  # false once /admin refuses the key
        self.samples: list[WorkerSample] = []
        self.seen: dict[str, list[dict[str, Any]]] = {}

    def now(self) -> float:
        return self.loop.time() - self.start

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(LoadProgress(self.total, self.submitted, self.finished))

    async def admin_get(self, path: str) -> Any:
        """GET an admin route; None when the key is not an admin key."""
        if not self.admin:
            return None
        response = await self.submit.get(path)
        if response.status_code in (401, 403):
            self.admin = False
            return None
        response.raise_for_status()
        return response.json()

    async def cost(self) -> float | None:
        rows = await self.admin_get("/admin/endpoints")
        if rows is None:
            return None
        for row in rows:
            if row["name"] == self.endpoint:
                return float(row["cost"]["total_usd"])
        raise NotFound(f"endpoint '{self.endpoint}' is not deployed on {self.submit.base_url}")

    async def sample(self) -> None:
        rows = await self.admin_get(f"/admin/workers?endpoint={self.endpoint}&all=1")
        if rows is None:
            return
        states = Counter(str(r["state"]) for r in rows if r["state"] != "terminated")
        self.samples.append(WorkerSample(self.now(), dict(states)))
        for row in rows:
            self.seen[str(row["id"])] = list(row["transitions"])

    async def sample_until(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            # A missed sample leaves a gap in the plot, not a failed run.
            with contextlib.suppress(httpx.HTTPError):
                await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def _submit(self) -> httpx.Response:
        """POST /run under an Idempotency-Key of its own. A try lost in transport (a control
        plane restarting, a dropped connection) is sent again under the same key until
        `submit_retry_s` has passed: the server makes one job however many tries reach it."""
        headers = {IDEMPOTENCY_HEADER: str(uuid.uuid4())}
        deadline = self.now() + self.submit_retry_s
        while True:
            try:
                return await self.submit.post(
                    f"/v2/{self.endpoint}/run", json=self.body, headers=headers
                )
            except httpx.TransportError:
                if self.now() + RETRY_S > deadline:
                    raise
                await asyncio.sleep(RETRY_S)

    async def job(self, job: _Job) -> None:
        try:
            await self._job(job)
        finally:
            self.finished += 1
            self.progress()

    async def _job(self, job: _Job) -> None:
        job.submitted_s = self.now()
        try:
            response = await self._submit()
        except httpx.HTTPError as exc:
            job.error = f"{type(exc).__name__}: {exc}"
            return
        finally:
            self.submitted += 1
            self.progress()
        if response.status_code != 200:
            job.error = _error_text(response)
            return
        job.wire = response.json()
        job.id, job.status = str(job.wire["id"]), str(job.wire["status"])
        while job.status not in TERMINAL:
            try:
                response = await self.wait.get(
                    f"/v2/{self.endpoint}/status-sync/{job.id}", params={"wait": WAIT_MS}
                )
            except httpx.TransportError:
                await asyncio.sleep(RETRY_S)  # a dropped long poll: ask again, gently
                continue
            if response.status_code != 200:
                job.error = _error_text(response)
                return
            job.wire = response.json()
            job.status = str(job.wire["status"])
        job.latency_s = self.now() - job.submitted_s


async def run_load(
    url: str,
    api_key: str,
    endpoint: str,
    arrivals: Sequence[float],
    payload: Any,
    speed: float = 1.0,
    on_progress: Callable[[LoadProgress], None] | None = None,
    *,
    sample_every_s: float = 0.5,
    drain_timeout_s: float = 600.0,
    max_waiting: int = 512,
    submit_retry_s: float = SUBMIT_RETRY_S,
) -> LoadResult:
    """Send one job per arrival (seconds from the trace's start, run at `speed` times real
    time: a 1 h trace at speed 60 takes a minute), wait for all to end, and return what happened.

    Jobs still not ended `drain_timeout_s` after the last was sent keep the status last seen.
    `max_waiting` bounds the open long polls; more pending jobs wait for a connection, which
    can only make their measured end-to-end latency longer, never shorter. A `/run` lost in
    transport is sent again, under its Idempotency-Key, for up to `submit_retry_s`.

    Raises:
        ValueError: speed not above 0.
        NotFound: the endpoint is not deployed (checked when the key is an admin key).
        httpx.HTTPError: the control plane cannot be reached at the start.
    """
    if speed <= 0:
        raise ValueError(f"speed {speed:g}: must be above 0")
    headers = {"Authorization": f"Bearer {api_key}"}
    base = url.rstrip("/")
    wait_timeout = httpx.Timeout(30.0, read=WAIT_MS / 1000 + 30)
    limits = httpx.Limits(max_connections=max_waiting, max_keepalive_connections=max_waiting)
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as submit,
        httpx.AsyncClient(
            base_url=base, headers=headers, timeout=wait_timeout, limits=limits
        ) as wait,
    ):
        run = _Run(
            submit, wait, endpoint, run_body(payload), len(arrivals), on_progress, submit_retry_s
        )
        cost_before = await run.cost()
        await run.sample()
        baseline = dict(run.seen)
        stop = asyncio.Event()
        sampler = asyncio.create_task(run.sample_until(stop, sample_every_s))
        jobs = [_Job(i, at / speed) for i, at in enumerate(sorted(arrivals))]
        tasks: list[asyncio.Task[None]] = []
        run.progress()
        try:
            for job in jobs:
                await asyncio.sleep(max(0.0, job.scheduled_s - run.now()))
                tasks.append(asyncio.create_task(run.job(job)))
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=drain_timeout_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            stop.set()
            await sampler
        wall_s = run.now()
        cost_after = None
        # The jobs are measured by now: a control plane gone at the very end costs only these.
        with contextlib.suppress(httpx.HTTPError):
            await run.sample()
            cost_after = await run.cost()
        cold, revived = count_starts(baseline, run.seen)
        return LoadResult(
            endpoint=endpoint,
            speed=speed,
            wall_s=wall_s,
            jobs=tuple(job.row() for job in jobs),
            samples=tuple(run.samples),
            cold_starts=cold if run.admin else None,
            revivals=revived if run.admin else None,
            cost_before_usd=cost_before,
            cost_after_usd=cost_after,
        )
