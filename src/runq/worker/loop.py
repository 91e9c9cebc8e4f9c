"""The worker's event loop: take jobs, run them, post results, obey stops and signals.

Three keep-alive connections on the loop carry the job-take long poll, the job-stop long
poll and the result posts; the heartbeat has its own thread. Jobs are asyncio tasks, so
async handlers run concurrently and a stop can cancel them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import signal
import time
from dataclasses import dataclass
from typing import Any

from runq.worker import results
from runq.worker.aioconn import AsyncConn
from runq.worker.backoff import POLL_FIRST_S, PollBackoff
from runq.worker.config import WorkerConfig
from runq.worker.execute import run_call, run_stream
from runq.worker.logs import log
from runq.worker.ping import Heartbeat
from runq.worker.poster import Poster
from runq.worker.results import Body, ErrorMeta
from runq.worker.settings import Settings
from runq.worker.transport import NETWORK_ERRORS, Reply, close_thread_conns

POLL_TIMEOUT_S = 90.0  # the server holds a poll ~30 s; runpod gives up at 90 s
POST_TIMEOUT_S = 60.0
RESCALE_S = 1.0  # while full, re-ask concurrency_modifier this often (runpod's 1 s loop)
# While jobs are short, hold up to this much work in reserve (by the last job's run time). The
# next job then starts the moment the last one returns, while results are still being posted,
# instead of after a round trip to the control plane. Jobs wait in reserve about this long at
# most; jobs longer than this get no reserve, so none sits behind a long job while another
# worker is free.
RESERVE_BUDGET_S = 0.02
MAX_RESERVE = 16


@dataclass
class _Slot:
    """A job this worker holds, from take until its result is posted."""

    task: asyncio.Task[None] | None = None
    stopped: bool = False
    cancellable: bool = False  # True while an async handler runs: a stop cancels it
    posting: bool = False  # the handler returned; only its result post is left


class WorkerLoop:
    """Runs jobs from the control plane until a signal or `refresh_worker` ends it."""

    def __init__(self, config: WorkerConfig, settings: Settings, meta: ErrorMeta) -> None:
        self.config = config
        self.settings = settings
        self.meta = meta
        self.concurrency = 1
        self.slots: dict[str, _Slot] = {}
        self.reserve: collections.deque[dict[str, Any]] = collections.deque()  # held, not run
        self.job_ids: tuple[str, ...] = ()  # immutable snapshot for the ping thread
        self._polling = 0  # jobs asked for by the take long poll in flight
        self._last_run_s = float("inf")  # how long the last handler call took
        self.draining = False
        self.heartbeat = Heartbeat(settings, lambda: self.job_ids)
        self._wake = asyncio.Event()  # a slot freed up, or draining began
        self._draining = asyncio.Event()
        key = settings.api_key
        self._take_conn = AsyncConn(POLL_TIMEOUT_S, key)
        self._stop_conn = AsyncConn(POLL_TIMEOUT_S, key)
        self.poster = Poster(settings, AsyncConn(POST_TIMEOUT_S, key), self._wanted, self._hold)

    def run(self) -> None:
        """Runs until drained; returns when the process should exit 0."""
        self.heartbeat.start()
        try:
            asyncio.run(self._main())  # returns after the handler threads have ended
        finally:
            self.heartbeat.stop()
            close_thread_conns()

    def begin_drain(self, reason: str) -> None:
        """Stops taking jobs; running jobs finish and post their results."""
        if self.draining:
            return
        log.info(f"Draining ({reason}): no new jobs, {len(self.slots)} still running.")
        self.draining = True
        self._draining.set()
        self._wake.set()
        self._take_conn.abort()  # abandon the take long poll in flight

    async def _main(self) -> None:
        self._install_signals()
        stop_task = asyncio.create_task(self._stop_loop())
        try:
            await self._take_loop()
            while self.slots or self.reserve:
                self._fill()  # reserved jobs are ours: they run before the worker exits
                self._wake.clear()
                await self._wake.wait()
        finally:
            stop_task.cancel()
            for conn in (self._stop_conn, self._take_conn, self.poster.conn):
                conn.abort()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.begin_drain, sig.name)
            except (ValueError, RuntimeError, NotImplementedError):
                log.warn("Signal handling needs the main thread; SIGTERM will not drain.")
                return

    # --- job-take ---------------------------------------------------------------------

    async def _take_loop(self) -> None:
        backoff = PollBackoff()
        while not self.draining:
            self._rescale()
            self._fill()
            needed = self.concurrency - self._running() - len(self.reserve) - self.poster.asked
            if needed <= 0:
                self._wake.clear()
                await _wait(self._wake, RESCALE_S)
                continue
            url = self.settings.take(needed, in_progress=bool(self.job_ids))
            started = time.monotonic()
            self._polling = needed
            try:
                reply = await self._take_conn.request("GET", url)
            except NETWORK_ERRORS as exc:
                self._polling = 0
                if self.draining:
                    return
                delay = backoff.error()
                # Say it once per outage at WARN; the control plane may just be restarting.
                level = "WARN" if delay == POLL_FIRST_S else "DEBUG"
                log.log(level, f"Job take failed, retrying: {exc!r}")
            else:
                self._polling = 0
                delay = self._on_take(reply, time.monotonic() - started, backoff)
            if delay:
                await _wait(self._draining, delay)

    def _on_take(self, reply: Reply, elapsed: float, backoff: PollBackoff) -> float:
        if reply.status == 429:
            return backoff.throttled()
        if reply.status in (204, 400):  # runpod treats 400 as "no job" (FlashBoot)
            return backoff.empty(elapsed)
        if reply.status != 200:
            log.error(f"Failed to get job. | HTTP {reply.status} {reply.body[:200]!r}")
            return backoff.error()
        jobs = _parse_jobs(reply.body)
        self._hold(jobs)
        return backoff.success() if jobs else backoff.empty(elapsed)

    def _rescale(self) -> None:
        try:
            wanted = int(self.config.concurrency_modifier(self.concurrency))
        except Exception as exc:
            log.error(f"concurrency_modifier failed, keeping {self.concurrency}: {exc!r}")
            return
        if wanted != self.concurrency:
            log.debug(f"Concurrency set to {wanted}.")
            self.concurrency = max(wanted, 0)

    # --- jobs -------------------------------------------------------------------------

    def _hold(self, jobs: list[dict[str, Any]]) -> None:
        """Jobs the control plane handed over: run them now, or keep them in reserve."""
        for job in _valid_jobs(jobs):
            if job["id"] in self.slots or any(job["id"] == r["id"] for r in self.reserve):
                log.warn("Job delivered again while held; ignored.", job["id"])
                continue
            self.reserve.append(job)
        self._fill()

    def _running(self) -> int:
        return sum(1 for slot in self.slots.values() if not slot.posting)

    def _fill(self) -> None:
        """Starts reserved jobs while handlers are free (draining too: they are ours)."""
        while self.reserve and self._running() < max(self.concurrency, 1 if self.draining else 0):
            self._start(self.reserve.popleft())
        self._snapshot()

    def _snapshot(self) -> None:
        self.job_ids = (*self.slots, *(job["id"] for job in self.reserve))

    def _wanted(self) -> int:
        """How many jobs to ask for with a result post: free handlers and free reserve places,
        less the jobs the take long poll already asks for."""
        if self.draining or self.config.refresh_worker:
            return 0
        held = self._running() + len(self.reserve) + self._polling
        return max(0, self.concurrency + self._reserve_size() - held)

    def _reserve_size(self) -> int:
        if self._last_run_s >= RESERVE_BUDGET_S:
            return 0
        return min(MAX_RESERVE, int(RESERVE_BUDGET_S / max(self._last_run_s, 1e-4)))

    def _start(self, job: dict[str, Any]) -> None:
        job_id: str = job["id"]
        slot = _Slot(cancellable=self.config.kind.cancellable)
        self.slots[job_id] = slot
        slot.task = asyncio.create_task(self._job(job, slot), name=f"job-{job_id}")

    async def _job(self, job: dict[str, Any], slot: _Slot) -> None:
        job_id: str = job["id"]
        log.info("Started.", job_id)
        try:
            started = time.monotonic()
            body = await self._execute(job, slot)
            self._last_run_s = time.monotonic() - started
            slot.cancellable = False  # from here on the result is posted whatever happens
            slot.posting = True
            self._fill()  # the next job runs while this result is posted
            if body is None or slot.stopped:
                log.info("Job stopped.", job_id)
                return
            if self.config.refresh_worker:
                body = results.with_stop_pod(body)
            await self.poster.done(job_id, body, self.config.kind.streams)
            log.info("Finished.", job_id)
            if body.get("stopPod"):
                self.begin_drain("refresh_worker")
        except asyncio.CancelledError:
            log.info("Job stopped.", job_id)
        except Exception as exc:  # a runq bug: keep the worker alive, say what happened
            log.error(f"Error handling job: {exc!r}", job_id)
        finally:
            del self.slots[job_id]
            self._fill()
            self._wake.set()

    async def _execute(self, job: dict[str, Any], slot: _Slot) -> Body | None:
        cfg = self.config
        if not cfg.kind.streams:
            return await run_call(cfg.handler, cfg.kind, job, self.meta)
        job_id: str = job["id"]

        async def sink(chunk: Any) -> None:
            await self.poster.chunk(job_id, chunk)

        return await run_stream(
            cfg.handler, cfg.kind, job, sink, cfg.aggregate, stopped=lambda: slot.stopped
        )

    # --- job-stop ---------------------------------------------------------------------

    async def _stop_loop(self) -> None:
        url = self.settings.stop()
        if url is None:
            log.warn("No /job-take/ in RUNPOD_WEBHOOK_GET_JOB: per-job stop is disabled.")
            return
        backoff = PollBackoff()
        while True:
            started = time.monotonic()
            try:
                reply = await self._stop_conn.request("GET", url)
            except NETWORK_ERRORS as exc:
                delay = backoff.error()
                log.debug(f"Stop poll failed, retrying in {delay:.1f}s: {exc!r}")
            else:
                delay = self._on_stop(reply, time.monotonic() - started, backoff)
            if delay:
                await asyncio.sleep(delay)

    def _on_stop(self, reply: Reply, elapsed: float, backoff: PollBackoff) -> float:
        if reply.status == 429:
            return backoff.throttled()
        if reply.status == 204:
            return backoff.empty(elapsed)
        if reply.status != 200:
            log.debug(f"Stop poll got HTTP {reply.status}")
            return backoff.error()
        ids = _parse_stop_ids(reply.body)
        for job_id in ids:
            self._stop(job_id)
        return backoff.success() if ids else backoff.empty(elapsed)

    def _stop(self, job_id: str) -> None:
        reserved = [job for job in self.reserve if job["id"] == job_id]
        if reserved:
            self.reserve.remove(reserved[0])
            self._snapshot()
            self._wake.set()
            log.info("Job stopped before it started.", job_id)
            return
        slot = self.slots.get(job_id)
        if slot is None:
            log.debug("Stop for a job not held here; ignored.", job_id)
            return
        log.info("Stopping job.", job_id)
        slot.stopped = True
        # Sync handlers cannot be interrupted: they keep their slot until they return, and
        # their result is dropped. Async ones are cancelled and get CancelledError.
        if slot.cancellable and slot.task is not None:
            slot.task.cancel()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Waits for `event`, at most `seconds`."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def _parse_jobs(body: bytes) -> list[Any]:
    """The jobs in a job-take reply: an object (single take) or a list (batch take)."""
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        log.warn(f"Job take reply is not JSON: {body[:200]!r}")
        return []
    items = [payload] if isinstance(payload, dict) else payload
    return items if isinstance(items, list) else []


def _valid_jobs(items: list[Any]) -> list[dict[str, Any]]:
    jobs = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            log.error(f"Job without an id dropped: {str(item)[:200]}")
            continue
        item.setdefault("input", None)  # runpod loses such a job; running it is kinder
        jobs.append(item)
    return jobs


def _parse_stop_ids(body: bytes) -> list[str]:
    """The string ids under `jobsToStop` in a job-stop reply."""
    try:
        payload = json.loads(body) if body.strip() else {}
    except ValueError:
        return []
    ids = payload.get("jobsToStop") if isinstance(payload, dict) else None
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
